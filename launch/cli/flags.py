"""Command-line flags of `python -m launch`, generated from `launch.options.definitions`.

Read only by `launch.main` (and `launch.local`, which validates a worker's
flags before starting it); the library (`launch.fit`) never touches them.
"""

from absl import flags

from launch.options import definitions as options_lib

_DEFINE = {"str": flags.DEFINE_string, "int": flags.DEFINE_integer,
           "float": flags.DEFINE_float, "bool": flags.DEFINE_boolean,
           "list": flags.DEFINE_list, "ints": flags.DEFINE_list}


def _define_all(flag_values: flags.FlagValues) -> None:
  # Values are validated by launch.options.resolve, which raises one clear sentence;
  # DEFINE_enum is avoided so that error has the same shape.
  for option in options_lib.OPTIONS:
    value = options_lib.default(option)
    if option.kind in ("list", "ints"):
      value = [str(item) for item in value]
    _DEFINE[option.kind](option.name, value, option.help,
                         flag_values=flag_values)
    flag_values[option.name].group = option.group


_define_all(flags.FLAGS)


def values(flag_values: flags.FlagValues = flags.FLAGS) -> dict:
  """{option name: parsed value} of every option."""
  return {option.name: flag_values[option.name].value
          for option in options_lib.OPTIONS}


def given(flag_values: flags.FlagValues = flags.FLAGS) -> set[str]:
  """Names of the options set on the command line."""
  return {option.name for option in options_lib.OPTIONS
          if flag_values[option.name].present}


def given_values(flag_values: flags.FlagValues = flags.FLAGS) -> dict:
  """{option name: parsed value} of the options set on the command line."""
  return {name: flag_values[name].value for name in given(flag_values)}
