"""What an option is: its kind, group, bounds, choices and facts.

`launch.options.definitions.OPTIONS` lists every option of a run; the
helpers here read one option's facts (its default, where a config holds
its value, how its choices read in a sentence).
"""

import dataclasses
import math
from typing import Any

from datasets.config import DataConfig
from launch.options.config import RunConfig
from trainer.config import TrainConfig

# Groups, in the order `--help` lists them.
GROUPS = ("data", "model", "schedule", "distribution", "fault tolerance",
          "output")
KINDS = ("str", "int", "float", "bool", "list", "ints")

# To what an option applies (`Option.applies_to`).
EVERY_MODEL = "every model"
BUILT_IN_ONLY = "built-in networks"  # Refused with a model_fn.
UNCOMPILED_ONLY = "uncompiled models"  # Refused for a compiled model.

_FROM_FIELD = object()


@dataclasses.dataclass(frozen=True)
class Range:
  """Allowed numbers: `low` and `high` (None: unbounded), ends open or not."""

  low: float | None = None
  high: float | None = None
  low_open: bool = False
  high_open: bool = False

  def __contains__(self, value) -> bool:
    # Written so that NaN is outside every range.
    return (math.isfinite(value)
            and (self.low is None or value > self.low
                 or (value == self.low and not self.low_open))
            and (self.high is None or value < self.high
                 or (value == self.high and not self.high_open)))

  def describe(self) -> str:
    """"positive", "zero or more" or "in [0, 1)"."""
    if self.high is None and self.low == 0:
      return "positive" if self.low_open else "zero or more"
    return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
            f"{')' if self.high_open else ']'}")


POSITIVE = Range(0, low_open=True)
ZERO_OR_MORE = Range(0)
FRACTION = Range(0, 1, high_open=True)  # [0, 1)


@dataclasses.dataclass(frozen=True)
class Option:
  """One option and all of its facts.

  Attributes:
    name: The keyword of `fit` and the flag's name (`--name`).
    kind: One of `KINDS`: "list" is comma-separated on the command line (a
      list or tuple from Python); "ints" is a list of positive integers
      (`length` of them if set).
    group: One of `GROUPS`.
    help: One or two sentences; "{choices}" in it is replaced by the
      choices.
    field: "train.x", "data.x" or "run.x": the config field it fills. The
      default comes from there unless `default` is given (when the option's
      "not set" differs from the field's default, e.g. `train_steps`).
    default: The default, when it is not the field's.
    choices: The allowed values (a tuple owned by the package implementing
      them).
    takes_colon: A value with ":" is not one of `choices` but names
      package.module:function (or per-output pairs of `loss`), checked
      where it is resolved.
    bounds: The allowed numbers (`Range`), or None.
    length: For "ints": how many.
    changes_result: A rerun in the same model_dir that changes it is
      refused (`launch.run.resume`): it changes what a checkpoint means.
    applies_to: `EVERY_MODEL`, `BUILT_IN_ONLY` or `UNCOMPILED_ONLY`.
    hparam: Its name in TensorBoard's HParams tab, or "" if not shown.
  """

  name: str
  kind: str
  group: str
  help: str
  field: str
  default: Any = _FROM_FIELD
  choices: tuple[str, ...] = ()
  takes_colon: bool = False
  bounds: Range | None = None
  length: int | None = None
  changes_result: bool = False
  applies_to: str = EVERY_MODEL
  hparam: str = ""

  def __post_init__(self):
    if self.choices:
      object.__setattr__(self, "help", self.help.format(
          choices=describe_choices(self)))

  @property
  def scope(self) -> str:
    """"train", "data" or "run": the config holding the field."""
    return self.field.partition(".")[0]

  @property
  def field_name(self) -> str:
    return self.field.partition(".")[2]


def describe_choices(option: Option) -> str:
  """"a, b or c"; a list option (several of them) or one that also takes
  package.module:function: "a, b, c"."""
  names = option.choices
  if option.kind == "list" or option.takes_colon or len(names) < 2:
    return ", ".join(names)
  return f"{', '.join(names[:-1])} or {names[-1]}"


_CLASSES = {"train": TrainConfig, "data": DataConfig, "run": RunConfig}


def _field_default(option: Option):
  field = {f.name: f for f in dataclasses.fields(_CLASSES[option.scope])}[
      option.field_name]
  if field.default is not dataclasses.MISSING:
    return field.default
  return field.default_factory()  # pytype: disable=missing-parameter


def default(option: Option):
  """The option's default value (as a Python value, lists as tuples)."""
  if option.default is not _FROM_FIELD:
    return option.default
  return _field_default(option)


def has_own_default(option: Option) -> bool:
  """Whether the option's default differs from its field's (e.g. None)."""
  return option.default is not _FROM_FIELD


def value_in(config: RunConfig, option: Option):
  """The option's value as `config` holds it (in its field)."""
  holder = config if option.scope == "run" else getattr(config, option.scope)
  return getattr(holder, option.field_name)


def config_path(option: Option) -> str:
  """Where config.json records it: "train.x", "data.x" or "x"."""
  return option.field_name if option.scope == "run" else option.field
