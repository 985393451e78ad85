"""`RunConfig`: flags turned into frozen configs, validated, and dumped.

Nothing here imports TensorFlow: a bad command line fails in well under a
second and before anything touches the disk.
"""

import dataclasses
import json
import math
import os

from datasets.config import DATASET_NAMES, DataConfig
from launch import flags as flag_defs
from launch import gpu_usage
from launch.errors import ConfigError
from launch.strategy import STRATEGY_KINDS
from trainer.config import (LOSS_NAMES, LR_SCHEDULES, METRIC_NAMES,
                            MODEL_NAMES, OPTIMIZER_NAMES, PRECISION_POLICIES,
                            TrainConfig)

CONFIG_FILENAME = "config.json"
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

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


def _shape(values: list[str]) -> tuple[int, ...]:
  try:
    shape = tuple(int(value) for value in values)
  except ValueError:
    shape = ()
  if not shape or min(shape) <= 0:
    raise ConfigError(f"--synthetic_shape={','.join(values)} must be positive"
                      " integers separated by commas.")
  return shape


def _pairs(flag: str, parts: list[str]) -> tuple[tuple[str, str], ...]:
  """Parses name:value items; names must be distinct."""
  pairs = []
  for part in parts:
    name, _, value = part.partition(":")
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


def _profile_steps(values: list[str]) -> tuple[int, int] | None:
  if not values:
    return None
  try:
    first, last = (int(value) for value in values)
  except ValueError:
    first, last = 0, -1
  if not 1 <= first <= last:
    raise ConfigError(f"--profile_steps={','.join(values)} must be two steps"
                      " a,b with 1 <= a <= b.")
  return first, last


def from_flags() -> RunConfig:
  """Builds the config from the parsed flags (without validating it)."""
  f = flag_defs
  if f.TRAIN_STEPS.value is None and f.EPOCHS.value is None:
    train_steps = 1000
  else:
    train_steps = f.TRAIN_STEPS.value or 0
  data = DataConfig(
      name=f.DATASET.value, data_dir=f.DATA_DIR.value,
      global_batch_size=f.GLOBAL_BATCH_SIZE.value, seed=f.SEED.value,
      validation_split=f.VALIDATION_SPLIT.value,
      synthetic_examples=f.SYNTHETIC_EXAMPLES.value,
      synthetic_eval_examples=f.SYNTHETIC_EVAL_EXAMPLES.value,
      synthetic_shape=_shape(f.SYNTHETIC_SHAPE.value),
      num_classes=f.NUM_CLASSES.value, cache=f.CACHE.value,
      shuffle_buffer=f.SHUFFLE_BUFFER.value)
  train = TrainConfig(
      model=f.MODEL.value, optimizer=f.OPTIMIZER.value,
      learning_rate=f.LEARNING_RATE.value, momentum=f.MOMENTUM.value,
      weight_decay=f.WEIGHT_DECAY.value,
      l2=f.L2.value, train_steps=train_steps,
      steps_per_loop=f.STEPS_PER_LOOP.value, eval_every=f.EVAL_EVERY.value,
      checkpoint_every=f.CHECKPOINT_EVERY.value,
      keep_checkpoints=f.KEEP_CHECKPOINTS.value,
      model_dir=f.MODEL_DIR.value or "", jit_compile=f.JIT_COMPILE.value,
      loss=f.LOSS.value,
      output_losses=(_pairs("loss", f.LOSS.value.split(","))
                     if ":" in f.LOSS.value else ()),
      loss_weights=tuple((name, _float("loss_weights", value)) for name, value
                         in _pairs("loss_weights", f.LOSS_WEIGHTS.value)),
      from_logits=f.FROM_LOGITS.value,
      metrics=tuple(f.METRICS.value), dropout=f.DROPOUT.value,
      sync_batchnorm=f.SYNC_BATCHNORM.value,
      mixed_precision=f.MIXED_PRECISION.value, clip_norm=f.CLIP_NORM.value,
      accumulate_steps=f.ACCUMULATE_STEPS.value,
      lr_schedule=f.LR_SCHEDULE.value, warmup_steps=f.WARMUP_STEPS.value,
      decay_steps=f.DECAY_STEPS.value, decay_rate=f.DECAY_RATE.value,
      monitor=f.MONITOR.value, monitor_mode=f.MONITOR_MODE.value,
      early_stopping_patience=f.EARLY_STOPPING_PATIENCE.value,
      restore_best_weights=f.RESTORE_BEST_WEIGHTS.value,
      plateau_patience=f.PLATEAU_PATIENCE.value,
      plateau_factor=f.PLATEAU_FACTOR.value,
      plateau_min_lr=f.PLATEAU_MIN_LR.value,
      keep_best_checkpoint=f.KEEP_BEST_CHECKPOINT.value,
      profile_steps=_profile_steps(f.PROFILE_STEPS.value))
  if f.TRAIN_STEPS.value is not None and f.EPOCHS.value is not None:
    raise ConfigError("set either --train_steps or --epochs, not both.")
  return RunConfig(data=data, train=train, epochs=f.EPOCHS.value,
                   strategy=f.STRATEGY.value, cpu_devices=f.CPU_DEVICES.value,
                   collective_timeout=f.COLLECTIVE_TIMEOUT.value,
                   startup_timeout=f.STARTUP_TIMEOUT.value,
                   gpu_memory=f.GPU_MEMORY.value,
                   seed=f.SEED.value, deterministic=f.DETERMINISTIC.value,
                   heartbeat_file=f.HEARTBEAT_FILE.value, mode=f.MODE.value,
                   watch=f.WATCH.value, eval_timeout=f.EVAL_TIMEOUT.value,
                   allow_config_change=f.ALLOW_CONFIG_CHANGE.value,
                   progress=f.PROGRESS.value)


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


def _check_monitoring(train: TrainConfig) -> None:
  """Early stopping, plateau and best checkpoint need periodic evaluation."""
  _check_choice("monitor_mode", train.monitor_mode, ("auto", "min", "max"))
  names = ("loss", "examples", *train.metrics)
  if train.output_losses:  # Per-output names: digit_loss, digit_accuracy...
    names = ("loss", "examples", *(f"{output}_{metric}" for output, _ in
                                   train.output_losses
                                   for metric in ("loss", *train.metrics)))
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
  if watching and not train.eval_every:
    raise ConfigError(f"--{watching[0]} acts on evaluations; set"
                      " --eval_every too.")
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
  _check_choice("dataset", data.name, DATASET_NAMES)
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
  _check_monitoring(train)
  _check_choice("mixed_precision", train.mixed_precision, PRECISION_POLICIES)
  for metric in train.metrics:
    _check_choice("metrics", metric, METRIC_NAMES)
  if (not train.output_losses and train.loss == "mse"
      and set(train.metrics) - {"mse"}):
    raise ConfigError(f"--metrics={','.join(train.metrics)} needs a"
                      " classification loss; with --loss=mse use --metrics=mse.")
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
  return dataclasses.replace(
      config, train=dataclasses.replace(config.train, train_steps=steps))


def check_profile_steps(config: RunConfig) -> None:
  """--profile_steps must lie in the (resolved) run."""
  profile, steps = config.train.profile_steps, config.train.train_steps
  if profile and profile[1] > steps:
    raise ConfigError(f"--profile_steps={profile[0]},{profile[1]} ends after"
                      f" the last step ({steps}).")


# Settings that change what a checkpoint's numbers mean (or its layout):
# resuming under other values would restore garbage or fail obscurely.
_CHECKPOINT_MEANING = (
    ("data", "name", "dataset"), ("data", "global_batch_size",
                                  "global_batch_size"),
    ("data", "seed", "seed"), ("data", "validation_split", "validation_split"),
    ("data", "synthetic_shape", "synthetic_shape"),
    ("data", "num_classes", "num_classes"), ("train", "model", "model"),
    ("train", "optimizer", "optimizer"), ("train", "loss", "loss"),
    ("train", "from_logits", "from_logits"),
    ("train", "mixed_precision", "mixed_precision"),
)


def check_resume_compatible(config: RunConfig) -> None:
  """Compares with `model_dir/config.json` of an earlier run, if any.

  Raises:
    ConfigError: If the earlier run differs in a setting that changes the
      meaning of its checkpoints, or its config.json is unreadable.
  """
  path = os.path.join(config.train.model_dir, CONFIG_FILENAME)
  if not os.path.exists(path):
    return
  try:
    with open(path, encoding="utf-8") as stream:
      saved = json.load(stream)
    current = json.loads(config.to_json())
    changes = [f"--{flag}={saved[group][field]!r} -> {current[group][field]!r}"
               for group, field, flag in _CHECKPOINT_MEANING
               if saved[group][field] != current[group][field]]
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise ConfigError(f"{path} is unreadable ({type(error).__name__}); pass"
                      " --allow_config_change to resume anyway.") from None
  if changes:
    raise ConfigError(f"--model_dir={config.train.model_dir} holds a run with"
                      f" other settings ({'; '.join(changes)}); use a new"
                      " --model_dir, or --allow_config_change to resume"
                      " anyway.")


def write_config(config: RunConfig) -> str:
  """Writes `model_dir/config.json` atomically; returns its path."""
  path = os.path.join(config.train.model_dir, CONFIG_FILENAME)
  staging = path + ".tmp"
  with open(staging, "w", encoding="utf-8") as stream:
    stream.write(config.to_json() + "\n")
  os.replace(staging, path)
  return path
