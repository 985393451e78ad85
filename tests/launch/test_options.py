"""One definition per option: flags, fit's keywords and config.json agree."""

import json

from absl import flags
import pytest

from launch.options import resolve as config_lib
from launch.cli import flags as _  # noqa: F401  Defines the flags.
from launch.options import definitions as options_lib
from launch.errors import ConfigError


def test_every_option_is_a_flag_with_the_same_default():
  for option in options_lib.OPTIONS:
    value = flags.FLAGS[option.name].default
    expected = options_lib.default(option)
    if option.kind in ("list", "ints"):
      expected = [str(item) for item in expected]
    assert value == expected, option.name
    assert flags.FLAGS[option.name].help == option.help


def test_option_defaults_are_the_config_fields_defaults():
  config = config_lib.from_options(config_lib.resolve_options({}))
  record = json.loads(config.to_json())
  for option in options_lib.OPTIONS:
    if not options_lib.has_own_default(option):
      scope, name = option.field.split(".")
      value = record[name] if scope == "run" else record[scope][name]
      expected = options_lib.default(option)
      assert value == (list(expected) if isinstance(expected, tuple)
                       else expected), option.name
  assert config.train.checkpoint_every == 500  # Once 500 here, 0 there.


def test_flags_and_python_values_give_the_same_config():
  from_flags = config_lib.from_options(config_lib.resolve_options(
      {"metrics": ["accuracy", "auc"], "synthetic_shape": ["8", "8", "1"],
       "profile_steps": ["2", "3"], "loss_weights": ["a:0.5"],
       "loss": "a:mse"}))
  from_python = config_lib.from_options(config_lib.resolve_options(
      {"metrics": ("accuracy", "auc"), "synthetic_shape": (8, 8, 1),
       "profile_steps": (2, 3), "loss_weights": {"a": 0.5},
       "loss": "a:mse"}))
  assert from_flags == from_python


@pytest.mark.parametrize("given, message", [
    ({"epoch": 3}, "unknown option 'epoch'"),
    ({"cpu_devices": 1.5}, "--cpu_devices=1.5 must be an integer"),
    ({"deterministic": "yes"}, "--deterministic='yes' must be True or False"),
    ({"image_size": (3,)}, "--image_size=3 must be 2 positive integers"),
])
def test_bad_values(given, message):
  with pytest.raises(ConfigError) as raised:
    config_lib.from_options(config_lib.resolve_options(given))
  assert message in str(raised.value)


def test_groups_are_known():
  assert {option.group for option in options_lib.OPTIONS} == set(
      options_lib.GROUPS)
