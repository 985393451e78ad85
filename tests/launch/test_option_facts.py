"""An option's facts live in its definition: everything else follows.

A fake option added in one place (`OPTIONS`, plus the config field it
fills) is validated, guarded by the resume check, refused for a compiled
model or a user's model, shown in the HParams and listed with its choices
in --help, without touching any other module.
"""

import dataclasses
import io
import os
import re
import contextlib
import pathlib

from absl import flags
import pytest

from launch.cli import flags as flag_defs
from launch.cli import usage
from launch.errors import KEYWORD_SPELLING, ConfigError
from launch.options import definitions as options_lib
from launch.options import option as option_lib
from launch.options import resolve as config_lib
from launch.run import plan as plan_lib
from launch.run import resume
from trainer.config import TrainConfig

_LEVELS = ("low", "high")  # Owned by "the package implementing them".


@dataclasses.dataclass(frozen=True, kw_only=True)
class _TrainConfigWithFakes(TrainConfig):
  fake_level: str = "low"
  fake_rate: float = 0.5


_FAKES = (
    options_lib.Option(
        "fake_level", "str", "model", "How hard: {choices}.",
        "train.fake_level", choices=_LEVELS,
        applies_to=options_lib.BUILT_IN_ONLY),
    options_lib.Option(
        "fake_rate", "float", "model", "A rate in (0, 1].", "train.fake_rate",
        bounds=options_lib.Range(0, 1, low_open=True), changes_result=True,
        applies_to=options_lib.UNCOMPILED_ONLY, hparam="fake_rate"),
)


@pytest.fixture(name="fakes")
def fixture_fakes(monkeypatch):
  monkeypatch.setattr(options_lib, "OPTIONS", options_lib.OPTIONS + _FAKES)
  # The config field the options fill (a real option adds it to the class).
  monkeypatch.setattr(config_lib, "TrainConfig", _TrainConfigWithFakes)
  monkeypatch.setitem(option_lib._CLASSES, "train",  # pylint: disable=protected-access
                      _TrainConfigWithFakes)


def _config(tmp_path, **given):
  return config_lib.to_config({"model_dir": str(tmp_path / "run"), **given})


def test_defaults_and_fields_follow(fakes, tmp_path):
  config = _config(tmp_path)
  assert (config.train.fake_level, config.train.fake_rate) == ("low", 0.5)
  assert _config(tmp_path, fake_rate=1.0).train.fake_rate == 1.0


@pytest.mark.parametrize("given, message", [
    ({"fake_level": "extreme"}, "--fake_level=extreme is not one of low,"
     " high."),
    ({"fake_rate": 0.0}, "--fake_rate=0.0 must be in (0, 1]."),
    ({"fake_rate": 1.5}, "--fake_rate=1.5 must be in (0, 1]."),
    ({"fake_rate": float("nan")}, "--fake_rate=nan must be in (0, 1]."),
    ({"fake_rate": "fast"}, "--fake_rate='fast' must be a number."),
])
def test_validation_follows_and_both_edges_spell_it(fakes, tmp_path, given,
                                                    message):
  with pytest.raises(ConfigError) as raised:
    _config(tmp_path, **given)
  assert str(raised.value) == message
  assert raised.value.option == next(iter(given))
  assert str(raised.value.spelled(KEYWORD_SPELLING)) == message[2:]


def test_the_resume_check_follows(fakes, tmp_path):
  first = _config(tmp_path, fake_rate=0.5)
  os.makedirs(os.path.join(first.train.model_dir, "checkpoints"))
  resume.write_config(first)
  pathlib.Path(first.train.model_dir, "checkpoints",
               "ckpt-3.index").write_text("")
  resume.check_resume_compatible(_config(tmp_path, fake_rate=0.5,
                                         fake_level="high"))  # Not result.
  with pytest.raises(ConfigError) as raised:
    resume.check_resume_compatible(_config(tmp_path, fake_rate=0.25))
  assert "(--fake_rate=0.5 -> 0.25)" in str(raised.value)
  assert "(fake_rate=0.5 -> 0.25)" in str(
      raised.value.spelled(KEYWORD_SPELLING))


def test_the_model_refusals_follow(fakes):
  with pytest.raises(ConfigError, match="^--fake_rate does not apply to a"
                     " compiled model"):
    plan_lib.refuse_for_compiled({"fake_rate", "seed"})
  plan_lib.refuse_for_compiled({"fake_level", "seed"})
  with pytest.raises(ConfigError, match="^--fake_level shapes the built-in"
                     " networks only"):
    plan_lib._check_model_options(  # pylint: disable=protected-access
        lambda: None, {"fake_level"})
  plan_lib._check_model_options(None, {"fake_level"})  # pylint: disable=protected-access


def test_hparams_follow(fakes, tmp_path):
  config = _config(tmp_path, fake_rate=0.75)
  shown = options_lib.hparams(config, is_built_in=True, is_compiled=False)
  assert shown["fake_rate"] == 0.75 and "fake_level" not in shown
  assert "fake_rate" not in options_lib.hparams(
      config, is_built_in=True, is_compiled=True)


def test_help_lists_the_choices(fakes):
  flag_values = flags.FlagValues()
  flag_defs._define_all(flag_values)  # pylint: disable=protected-access
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    usage.print_help(flag_values, doc="", program="python -m launch")
  assert re.search(r"\n  --fake_level=low\n +How hard: low or high\.\n",
                   out.getvalue())


def test_every_real_option_is_consistent():
  for option in options_lib.OPTIONS:
    assert option.kind in options_lib.KINDS, option.name
    assert "{choices}" not in option.help, option.name
    assert option.applies_to in (options_lib.EVERY_MODEL,
                                 options_lib.BUILT_IN_ONLY,
                                 options_lib.UNCOMPILED_ONLY), option.name
    if option.bounds is not None:  # The default is allowed.
      value = options_lib.default(option)
      assert value is None or value in option.bounds, option.name
    if option.choices and not option.takes_colon:
      values = options_lib.default(option)
      for value in (values if option.kind == "list" else (values,)):
        assert value in option.choices, option.name


_OPTION_FLAG = re.compile(r"--(no)?([a-z_]+)")


@pytest.mark.parametrize("package", ["trainer", "datasets"])
def test_no_flag_spellings_below_launch(package):
  """trainer/ and datasets/ name their own arguments; launch spells flags."""
  names = {option.name for option in options_lib.OPTIONS}
  root = pathlib.Path(__file__).parents[2] / package
  found = [f"{path.name}: --{match[2]}" for path in root.glob("**/*.py")
           for match in _OPTION_FLAG.finditer(path.read_text())
           if match[2] in names]
  assert not found
