"""`RunConfig`: flags turned into frozen configs, validated, and dumped.

Nothing here imports TensorFlow: a bad command line fails in well under a
second and before anything touches the disk.
"""

import dataclasses
import json
import math
import os

from datasets.config import DATASET_NAMES, DataConfig
from launch.options import definitions as options_lib
from launch.distributed import gpu_usage
from launch.errors import ConfigError
from launch.distributed.strategy import STRATEGY_KINDS
from datasets.labels import TASKS
from trainer.config import (LOSS_NAMES, LR_SCHEDULES, METRIC_NAMES,
                            MODEL_NAMES, OPTIMIZER_NAMES, PRECISION_POLICIES,
                            REGRESSION_METRICS, TrainConfig)

CONFIG_FILENAME = "config.json"  # model_dir/config.json (trainer.layout).
MODES = ("train", "evaluate")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
  """Everything one run needs, as plain values.

  Attributes:
    data: Handed to `datasets`.
    train: Handed to `trainer`; `train.train_steps` is final once
      `resolve_train_steps` ran.
    epochs: If set, the run length in passes over the training data.
    strategy: One of `STRATEGY_KINDS`.
    cpu_devices: Logical CPU devices per process when there is no GPU.
    collective_timeout: Seconds one compiled multi-worker call may take
      before the worker gives up on its peers (0: never).
    startup_timeout: Seconds the workers may take to join (0: forever).
    gpu_memory: "auto", "growth", "all" or a per-GPU limit in MB.
    seed: Seed of the weights (the data seed is `data.seed`).
    deterministic: Enable TensorFlow's op determinism.
    heartbeat_file: Where to record progress for a supervisor, or None.
    mode: "train" or "evaluate".
    watch: Evaluate each new checkpoint until the final step.
    eval_timeout: Seconds a watching evaluator waits for a new checkpoint.
    allow_config_change: Resume even if model_dir's config.json disagrees
      on what the checkpoint means.
    progress: "auto", "bar", "log" or "none" (the chief's display).
    verbose: Show TensorFlow's own start-up and INFO log lines too.
    slurm_port_base: Under srun, task i of a node listens on this + i.
    train_data: Path of the user's training data (replaces `data.name`).
    eval_data: Path of the user's eval data.
    label_column: CSV: the label's column.
    image_size: Image directories: (height, width) after resizing.
    task: "auto", "classification" or "regression"; the plan resolves
      "auto" from the data (config.json records the resolved task).
    skip_unreadable: Image directories: leave out unreadable files.
  """

  data: DataConfig
  train: TrainConfig
  epochs: float | None = None
  strategy: str = "auto"
  cpu_devices: int = 1
  collective_timeout: float = 300.0
  startup_timeout: float = 900.0
  gpu_memory: str = "auto"
  seed: int = 0
  deterministic: bool = False
  heartbeat_file: str | None = None
  mode: str = "train"
  watch: bool = False
  eval_timeout: float = 3600.0
  allow_config_change: bool = False
  progress: str = "auto"
  verbose: bool = False
  slurm_port_base: int = 8888
  train_data: str | None = None
  eval_data: str | None = None
  label_column: str | None = None
  image_size: tuple[int, int] = (256, 256)
  task: str = "auto"
  skip_unreadable: bool = False

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _ints(name: str, values, count: int | None = None) -> tuple[int, ...]:
  """A list of positive integers: "28,28,1" or [28, 28, 1]."""
  items = values.split(",") if isinstance(values, str) else list(values)
  try:
    numbers = tuple(int(item) for item in items)
  except (TypeError, ValueError):
    numbers = ()
  if (not numbers or min(numbers) <= 0
      or (count is not None and len(numbers) != count)):
    size = f"{count} " if count else ""
    raise ConfigError(f"--{name}={','.join(str(i) for i in items)} must be"
                      f" {size}positive integers separated by commas.")
  return numbers


def _pairs(flag: str, parts) -> tuple[tuple[str, str], ...]:
  """Parses name:value items (or a dict); names must be distinct."""
  if isinstance(parts, dict):
    parts = [f"{name}:{value}" for name, value in parts.items()]
  pairs = []
  for part in parts:
    name, _, value = str(part).partition(":")
    if not name.strip() or not value.strip():
      raise ConfigError(f"--{flag}: {part!r} is not name:value.")
    pairs.append((name.strip(), value.strip()))
  names = [name for name, _ in pairs]
  if len(set(names)) != len(names):
    raise ConfigError(f"--{flag} names an output twice.")
  return tuple(pairs)


def _float(flag: str, value: str) -> float:
  try:
    number = float(value)
  except ValueError:
    number = -1.0
  if not number >= 0:
    raise ConfigError(f"--{flag}: {value!r} is not a weight >= 0.")
  return number


def _profile_steps(values) -> tuple[int, int] | None:
  if not values:
    return None
  try:
    first, last = (int(value) for value in values)
  except (TypeError, ValueError):
    first, last = 0, -1
  if not 1 <= first <= last:
    raise ConfigError(f"--profile_steps={','.join(map(str, values))} must be"
                      " two steps a,b with 1 <= a <= b.")
  return first, last


def _coerce(option: options_lib.Option, value):
  """A flag value or a Python value as the option's type; None stays None."""
  if value is None:
    if options_lib.default(option) is None:
      return None
    raise ConfigError(f"--{option.name}=None is not allowed; leave it out"
                      " for the default.")
  kind = option.kind
  try:
    if kind == "list":
      if isinstance(value, str):
        return tuple(item for item in value.split(",") if item)
      if isinstance(value, dict):
        return value
      return tuple(value)
    if kind == "bool":
      if not isinstance(value, bool):
        raise TypeError
      return value
    if kind == "int":
      if isinstance(value, bool) or int(value) != value:
        raise TypeError
      return int(value)
    if kind == "float":
      if isinstance(value, bool):
        raise TypeError
      return float(value)
    if not isinstance(value, str):
      raise TypeError
    return value
  except (TypeError, ValueError):
    wanted = {"list": "a list", "bool": "True or False", "int": "an integer",
              "float": "a number", "str": "a string"}[kind]
    raise ConfigError(f"--{option.name}={value!r} must be {wanted}.") from None


def resolve_options(given: dict) -> dict:
  """Every option's value: `given` (by name) over the defaults, coerced.

  Raises:
    ConfigError: For an unknown name or a value of the wrong type.
  """
  unknown = sorted(set(given) - set(options_lib.BY_NAME))
  if unknown:
    raise ConfigError(f"unknown option {unknown[0]!r}; the options are the"
                      " flags of python -m launch --help.")
  values = options_lib.defaults()
  values.update(given)
  return {name: _coerce(options_lib.BY_NAME[name], value)
          for name, value in values.items()}


def from_options(values: dict) -> RunConfig:
  """Builds the config from option values (without validating it).

  Args:
    values: {option name: value} for every option (`resolve_options`).
  """
  fields = {"train": {}, "data": {}, "run": {}}
  for option in options_lib.OPTIONS:
    if option.field:
      scope, name = option.field.split(".")
      fields[scope][name] = values[option.name]
  train, data, run = fields["train"], fields["data"], fields["run"]
  if values["train_steps"] is not None and values["epochs"] is not None:
    raise ConfigError("set either --train_steps or --epochs, not both.")
  if values["train_steps"] is None and values["epochs"] is None:
    train["train_steps"] = 1000
  else:
    train["train_steps"] = values["train_steps"] or 0
  loss = values["loss"]
  train.update(
      # Empty: the task's defaults, chosen once the data is known.
      metrics=tuple(values["metrics"]),
      output_losses=(_pairs("loss", loss.split(",")) if ":" in loss else ()),
      loss_weights=tuple((name, _float("loss_weights", value)) for name, value
                         in _pairs("loss_weights", values["loss_weights"])),
      profile_steps=_profile_steps(values["profile_steps"]),
      model_dir=values["model_dir"] or "")
  data.update(seed=values["seed"],
              synthetic_shape=_ints("synthetic_shape",
                                    values["synthetic_shape"]))
  run.update(train_data=values["train_data"], eval_data=values["eval_data"],
             label_column=values["label_column"],
             image_size=_ints("image_size", values["image_size"], count=2))
  return RunConfig(data=DataConfig(**data), train=TrainConfig(**train), **run)


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
  if value not in choices:
    raise ConfigError(f"--{flag}={value} is not one of {', '.join(choices)}.")


def _check_positive(values: dict[str, float], *, allow_zero: bool) -> None:
  for flag, value in values.items():
    if value < 0 or (value == 0 and not allow_zero):
      bound = "zero or more" if allow_zero else "positive"
      raise ConfigError(f"--{flag}={value} must be {bound}.")


def _check_losses(train: TrainConfig) -> None:
  if not train.output_losses:
    _check_choice("loss", train.loss, LOSS_NAMES)
    if train.loss_weights:
      raise ConfigError("--loss_weights needs a loss per output:"
                        " --loss=output:loss,output:loss.")
    return
  for _, loss in train.output_losses:
    _check_choice("loss", loss, LOSS_NAMES)
  outputs = {name for name, _ in train.output_losses}
  unknown = [name for name, _ in train.loss_weights if name not in outputs]
  if unknown:
    raise ConfigError(f"--loss_weights names {', '.join(unknown)}, which"
                      f" --loss does not ({', '.join(sorted(outputs))}).")


def _check_monitoring(train: TrainConfig, epochs: float | None) -> None:
  """Early stopping, plateau and best checkpoint need periodic evaluation."""
  _check_choice("monitor_mode", train.monitor_mode, ("auto", "min", "max"))
  # No metrics yet: the task's defaults, known once the data is read
  # (launch.run.tasks checks again then).
  metrics = train.metrics or ("accuracy", *REGRESSION_METRICS)
  names = ("loss", "examples", *metrics)
  if train.output_losses:  # Per-output names: digit_loss, digit_accuracy...
    names = ("loss", "examples", *(f"{output}_{metric}" for output, _ in
                                   train.output_losses
                                   for metric in ("loss", *metrics)))
  if train.monitor not in names:
    raise ConfigError(f"--monitor={train.monitor} is not an eval metric of"
                      f" this run ({', '.join(names)}).")
  _check_positive({"early_stopping_patience": train.early_stopping_patience,
                   "plateau_patience": train.plateau_patience,
                   "plateau_min_lr": train.plateau_min_lr}, allow_zero=True)
  if not 0 < train.plateau_factor < 1:
    raise ConfigError(f"--plateau_factor={train.plateau_factor} must be in"
                      " (0, 1).")
  watching = [flag for flag, on in (
      ("early_stopping_patience", train.early_stopping_patience),
      ("plateau_patience", train.plateau_patience),
      ("keep_best_checkpoint", train.keep_best_checkpoint)) if on]
  if watching and not train.eval_every and epochs is None:
    raise ConfigError(f"--{watching[0]} acts on evaluations; set"
                      " --eval_every (or --epochs) too.")
  if train.plateau_patience and train.lr_schedule != "constant":
    raise ConfigError("--plateau_patience changes a constant learning rate;"
                      f" it cannot be combined with --lr_schedule="
                      f"{train.lr_schedule}.")


def check_model_dir(model_dir: str) -> None:
  """Checks `model_dir` can be created and written, without writing."""
  if not model_dir:
    raise ConfigError("--model_dir is required (checkpoints, summaries and"
                      " the export go there).")
  path = os.path.abspath(model_dir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"--model_dir={model_dir} exists and is not a"
                      " directory.")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing) or not os.access(existing,
                                                  os.W_OK | os.X_OK):
    raise ConfigError(f"--model_dir={model_dir} is not writable ({existing}"
                      " does not allow it).")


def validate(config: RunConfig) -> None:
  """Checks everything that can be checked without TensorFlow or data.

  Raises:
    ConfigError: Naming the first problem found.
  """
  train, data = config.train, config.data
  if ":" not in train.model:  # package.module:function is checked on import.
    _check_choice("model", train.model, MODEL_NAMES)
  if ":" not in data.name:  # package.module:function is checked on import.
    _check_choice("dataset", data.name, DATASET_NAMES)
  _check_choice("progress", config.progress, ("auto", "bar", "log", "none"))
  _check_choice("optimizer", train.optimizer, OPTIMIZER_NAMES)
  _check_choice("strategy", config.strategy, STRATEGY_KINDS)
  _check_choice("mode", config.mode, MODES)
  gpu_usage.choose_memory_policy(config.gpu_memory, processes_on_node=1)
  if config.watch and config.mode != "evaluate":
    raise ConfigError("--watch needs --mode=evaluate.")
  _check_losses(train)
  _check_choice("lr_schedule", train.lr_schedule, LR_SCHEDULES)
  if not 0 < train.decay_rate <= 1:
    raise ConfigError(f"--decay_rate={train.decay_rate} must be in (0, 1].")
  _check_monitoring(train, config.epochs)
  _check_choice("mixed_precision", train.mixed_precision, PRECISION_POLICIES)
  for metric in train.metrics:
    _check_choice("metrics", metric, METRIC_NAMES)
  if (not train.output_losses and train.loss == "mse"
      and set(train.metrics) - set(REGRESSION_METRICS)):
    raise ConfigError(f"--metrics={','.join(train.metrics)} needs a"
                      " classification loss; with --loss=mse (regression) use"
                      " --metrics=mae,mse.")
  if (not train.output_losses and config.task == "classification"
      and "mae" in train.metrics):
    raise ConfigError("--metrics=mae is a regression metric, but"
                      " --task=classification; use accuracy, precision,"
                      " recall, auc or mse.")
  _check_choice("task", config.task, TASKS)
  if not 0 <= train.dropout < 1:
    raise ConfigError(f"--dropout={train.dropout} must be in [0, 1).")
  _check_positive({
      "global_batch_size": data.global_batch_size,
      "steps_per_loop": train.steps_per_loop,
      "keep_checkpoints": train.keep_checkpoints,
      "learning_rate": train.learning_rate,
      "cpu_devices": config.cpu_devices,
      "num_classes": data.num_classes,
      "synthetic_examples": data.synthetic_examples,
      "synthetic_eval_examples": data.synthetic_eval_examples,
      "accumulate_steps": train.accumulate_steps,
      "shuffle_buffer": data.shuffle_buffer,
      "decay_steps": train.decay_steps,
  }, allow_zero=False)
  _check_positive({
      "eval_every": train.eval_every,
      "checkpoint_every": train.checkpoint_every,
      "momentum": train.momentum, "l2": train.l2,
      "weight_decay": train.weight_decay,
      "collective_timeout": config.collective_timeout,
      "startup_timeout": config.startup_timeout,
      "clip_norm": train.clip_norm,
      "warmup_steps": train.warmup_steps,
  }, allow_zero=True)
  if config.epochs is None:
    _check_positive({"train_steps": train.train_steps}, allow_zero=False)
  elif not (config.epochs > 0 and math.isfinite(config.epochs)):
    raise ConfigError(f"--epochs={config.epochs} must be positive.")
  if not 0 <= data.validation_split < 1:
    raise ConfigError(f"--validation_split={data.validation_split} must be in"
                      " [0, 1).")
  if data.data_dir is not None and not os.path.isdir(data.data_dir):
    raise ConfigError(f"--data_dir={data.data_dir} is not a directory.")
  check_model_dir(train.model_dir)


def resolve_train_steps(config: RunConfig, num_train_examples: int) -> RunConfig:
  """Turns --epochs into a step count (rounded up) once the data is known."""
  if config.epochs is None:
    return config
  steps = math.ceil(config.epochs * num_train_examples
                    / config.data.global_batch_size)
  # As in Keras's fit: evaluate after every epoch unless told otherwise.
  eval_every = config.train.eval_every or math.ceil(
      num_train_examples / config.data.global_batch_size)
  return dataclasses.replace(
      config, train=dataclasses.replace(config.train, train_steps=steps,
                                        eval_every=eval_every))


def check_profile_steps(config: RunConfig) -> None:
  """--profile_steps must lie in the (resolved) run."""
  profile, steps = config.train.profile_steps, config.train.train_steps
  if profile and profile[1] > steps:
    raise ConfigError(f"--profile_steps={profile[0]},{profile[1]} ends after"
                      f" the last step ({steps}).")
