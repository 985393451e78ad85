"""Options -> a validated `RunConfig`, written once for every caller.

`to_config` is what `launch.fit`, `python -m launch` and `launch.local`
(which validates a worker's flags before starting it) call. The checks of
one option (its choices and bounds) follow from its definition; the
checks across options are the functions below. Nothing here imports
TensorFlow: a bad command line fails in well under a second and before
anything touches the disk.
"""

import dataclasses
import math
import os

from datasets.config import DataConfig
from launch.distributed import gpu_usage
from launch.errors import ConfigError, flag
from launch.options import definitions as options_lib
from launch.options import directories
from launch.options.config import RunConfig
from trainer.config import REGRESSION_METRICS, TrainConfig

__all__ = ["RunConfig", "to_config", "resolve_options", "from_options",
           "validate", "check_model_dir", "resolve_train_steps",
           "check_profile_steps"]


def _ints(option: options_lib.Option, values) -> tuple[int, ...]:
  """A list of positive integers: "28,28,1" or [28, 28, 1]."""
  items = values.split(",") if isinstance(values, str) else list(values)
  try:
    numbers = tuple(int(item) for item in items)
  except (TypeError, ValueError):
    numbers = ()
  count = option.length
  if (not numbers or min(numbers) <= 0
      or (count is not None and len(numbers) != count)):
    size = f"{count} " if count else ""
    raise ConfigError(f"{flag(option.name)}={','.join(str(i) for i in items)}"
                      f" must be {size}positive integers separated by"
                      " commas.")
  return numbers


def _pairs(name: str, parts) -> tuple[tuple[str, str], ...]:
  """Parses name:value items (or a dict); names must be distinct."""
  if isinstance(parts, dict):
    parts = [f"{key}:{value}" for key, value in parts.items()]
  pairs = []
  for part in parts:
    key, _, value = str(part).partition(":")
    if not key.strip() or not value.strip():
      raise ConfigError(f"{flag(name)}: {part!r} is not name:value.")
    pairs.append((key.strip(), value.strip()))
  keys = [key for key, _ in pairs]
  if len(set(keys)) != len(keys):
    raise ConfigError(f"{flag(name)} names an output twice.")
  return tuple(pairs)


def _weight(value: str) -> float:
  try:
    number = float(value)
  except ValueError:
    number = -1.0
  if not number >= 0:
    raise ConfigError(f"{flag('loss_weights')}: {value!r} is not a weight"
                      " >= 0.")
  return number


def _profile_steps(values) -> tuple[int, int] | None:
  if not values:
    return None
  try:
    first, last = (int(value) for value in values)
  except (TypeError, ValueError):
    first, last = 0, -1
  if not 1 <= first <= last:
    raise ConfigError(f"{flag('profile_steps')}={','.join(map(str, values))}"
                      " must be two steps a,b with 1 <= a <= b.")
  return first, last


_WANTED = {"list": "a list", "ints": "a list", "bool": "True or False",
           "int": "an integer", "float": "a number", "str": "a string"}


def _coerce(option: options_lib.Option, value):
  """A flag value or a Python value as the option's type; None stays None."""
  if value is None:
    if options_lib.default(option) is None:
      return None
    raise ConfigError(f"{flag(option.name)}=None is not allowed; leave it"
                      " out for the default.")
  kind = option.kind
  if kind == "ints":
    return _ints(option, value)
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
    raise ConfigError(f"{flag(option.name)}={value!r} must be"
                      f" {_WANTED[kind]}.") from None


def resolve_options(given: dict) -> dict:
  """Every option's value: `given` (by name) over the defaults, coerced.

  Raises:
    ConfigError: For an unknown name or a value of the wrong type.
  """
  options = options_lib.by_name()
  unknown = sorted(set(given) - set(options))
  if unknown:
    raise ConfigError(f"unknown option {unknown[0]!r}; the options are the"
                      " flags of python -m launch --help.")
  values = options_lib.defaults()
  values.update(given)
  return {name: _coerce(options[name], value)
          for name, value in values.items()}


def from_options(values: dict) -> RunConfig:
  """Builds the config from option values (without validating it).

  Every option fills its field; `train_steps` left unset (None) keeps its
  field's default, and a few values are parsed further (per-output losses
  and weights, the profiled steps).

  Args:
    values: {option name: value} for every option (`resolve_options`).

  Raises:
    ConfigError: If a value cannot be parsed, or both `train_steps` and
      `epochs` are set.
  """
  if values["train_steps"] is not None and values["epochs"] is not None:
    raise ConfigError(f"set either {flag('train_steps')} or {flag('epochs')},"
                      " not both.")
  fields = {"train": {}, "data": {}, "run": {}}
  for option in options_lib.OPTIONS:
    if values[option.name] is not None or not options_lib.has_own_default(
        option):
      fields[option.scope][option.field_name] = values[option.name]
  train = fields["train"]
  if values["epochs"] is not None:  # Resolved once the data is known.
    train["train_steps"] = 0
  loss = values["loss"]
  train.update(
      metrics=tuple(values["metrics"]),  # Empty: the task's defaults.
      output_losses=_pairs("loss", loss.split(",")) if ":" in loss else (),
      loss_weights=tuple((name, _weight(value)) for name, value
                         in _pairs("loss_weights", values["loss_weights"])),
      profile_steps=_profile_steps(values["profile_steps"]))
  return RunConfig(data=DataConfig(**fields["data"]),
                   train=TrainConfig(**train), **fields["run"])


def to_config(given: dict) -> RunConfig:
  """The validated config of the options a caller set.

  Args:
    given: {option name: value} of the options set (flags' values or
      `fit`'s keywords); the others take their defaults.

  Raises:
    ConfigError: Naming the first problem found.
  """
  config = from_options(resolve_options(given))
  validate(config)
  return config


def _check_option(config: RunConfig, option: options_lib.Option) -> None:
  """An option's own facts: its choices and its bounds."""
  value = options_lib.value_in(config, option)
  if value is None:
    return
  if option.choices:
    items = value if option.kind == "list" else (value,)
    for item in items:
      if not (option.takes_colon and ":" in item) and (
          item not in option.choices):
        raise ConfigError(f"{flag(option.name)}={item} is not one of"
                          f" {', '.join(option.choices)}.")
  if option.bounds is not None and value not in option.bounds:
    raise ConfigError(f"{flag(option.name)}={value} must be"
                      f" {option.bounds.describe()}.")


def _check_losses(train: TrainConfig) -> None:
  loss_names = options_lib.by_name()["loss"].choices
  for _, loss in train.output_losses:
    if loss not in loss_names:
      raise ConfigError(f"{flag('loss')}={loss} is not one of"
                        f" {', '.join(loss_names)}.")
  if not train.output_losses:
    if train.loss_weights:
      raise ConfigError(f"{flag('loss_weights')} needs a loss per output:"
                        f" {flag('loss')}=output:loss,output:loss.")
    return
  outputs = {name for name, _ in train.output_losses}
  unknown = [name for name, _ in train.loss_weights if name not in outputs]
  if unknown:
    raise ConfigError(f"{flag('loss_weights')} names {', '.join(unknown)},"
                      f" which {flag('loss')} does not"
                      f" ({', '.join(sorted(outputs))}).")


def _check_metrics(config: RunConfig) -> None:
  train = config.train
  if (not train.output_losses and train.loss == "mse"
      and set(train.metrics) - set(REGRESSION_METRICS)):
    raise ConfigError(f"{flag('metrics')}={','.join(train.metrics)} needs a"
                      f" classification loss; with {flag('loss')}=mse"
                      f" (regression) use {flag('metrics')}=mae,mse.")
  if (not train.output_losses and config.task == "classification"
      and "mae" in train.metrics):
    raise ConfigError(f"{flag('metrics')}=mae is a regression metric, but"
                      f" {flag('task')}=classification; use accuracy,"
                      " precision, recall, auc or mse.")


def _check_monitoring(train: TrainConfig, epochs: float | None) -> None:
  """Early stopping, plateau and best checkpoint need periodic evaluation."""
  # No metrics yet: the task's defaults, known once the data is read
  # (launch.run.tasks checks again then).
  metrics = train.metrics or ("accuracy", *REGRESSION_METRICS)
  names = ("loss", "examples", *metrics)
  if train.output_losses:  # Per-output names: digit_loss, digit_accuracy...
    names = ("loss", "examples", *(f"{output}_{metric}" for output, _ in
                                   train.output_losses
                                   for metric in ("loss", *metrics)))
  if train.monitor not in names:
    raise ConfigError(f"{flag('monitor')}={train.monitor} is not an eval"
                      f" metric of this run ({', '.join(names)}).")
  watching = [name for name, on in (
      ("early_stopping_patience", train.early_stopping_patience),
      ("plateau_patience", train.plateau_patience),
      ("keep_best_checkpoint", train.keep_best_checkpoint)) if on]
  if watching and not train.eval_every and epochs is None:
    raise ConfigError(f"{flag(watching[0])} acts on evaluations; set"
                      f" {flag('eval_every')} (or {flag('epochs')}) too.")
  if train.plateau_patience and train.lr_schedule != "constant":
    raise ConfigError(f"{flag('plateau_patience')} changes a constant"
                      " learning rate; it cannot be combined with"
                      f" {flag('lr_schedule')}={train.lr_schedule}.")


def check_model_dir(model_dir: str) -> None:
  """Checks `model_dir` can be created and written, without writing."""
  if not model_dir:
    raise ConfigError(f"{flag('model_dir')} is required (checkpoints,"
                      " summaries and the export go there).")
  path = os.path.abspath(model_dir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(f"{flag('model_dir')}={model_dir} exists and is not a"
                      " directory.")
  directories.check_directory("model_dir", model_dir, path, model_dir=path)


def validate(config: RunConfig) -> None:
  """Checks everything that can be checked without TensorFlow or data.

  First every option's own choices and bounds (from its definition), then
  the rules across options.

  Raises:
    ConfigError: Naming the first problem found.
  """
  for option in options_lib.OPTIONS:
    # With --epochs the step count is derived from the data later.
    if not (option.name == "train_steps" and config.epochs is not None):
      _check_option(config, option)
  gpu_usage.choose_memory_policy(config.gpu_memory, processes_on_node=1)
  if config.watch and config.mode != "evaluate":
    raise ConfigError(f"{flag('watch')} needs {flag('mode')}=evaluate.")
  _check_losses(config.train)
  _check_monitoring(config.train, config.epochs)
  _check_metrics(config)
  data_dir = config.data.data_dir
  if data_dir is not None and not os.path.isdir(data_dir):
    raise ConfigError(f"{flag('data_dir')}={data_dir} is not a directory.")
  check_model_dir(config.train.model_dir)
  directories.check_writable(config)  # Every directory the run writes.


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
    raise ConfigError(f"{flag('profile_steps')}={profile[0]},{profile[1]}"
                      f" ends after the last step ({steps}).")
