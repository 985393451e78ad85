"""`--help` of the command-line tools: their own flags, grouped, exit 0.

Real processes at COLUMNS=80; none of them imports TensorFlow.
"""

import re
import subprocess
import sys

from absl import flags
import pytest

from launch.options import definitions as options_lib
from launch.cli import usage
from tests.processes import REPO_ROOT, harness_env

WIDTH = 80


def run_tool(module: str, *args: str,
             python_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, *python_args, "-m", module, *args],
      env=harness_env(COLUMNS=str(WIDTH)), cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=60, check=False)


def assert_clean_help(result: subprocess.CompletedProcess, program: str):
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith(f"usage: {program} [--flag=value ...]\n")
  too_long = [line for line in result.stdout.splitlines()
              if len(line) > WIDTH]
  assert not too_long
  assert "Traceback" not in result.stderr
  assert "error" not in result.stderr.lower()


def headers(text: str) -> list[str]:
  """The section headers: unindented lines ending in a colon."""
  return re.findall(r"^([a-z][\w. ]*):$", text, re.MULTILINE)


@pytest.mark.parametrize("help_arg", ["--help", "-h", "--helpshort"])
def test_launch_help_lists_every_option_by_group(help_arg):
  result = run_tool("launch", help_arg)
  assert_clean_help(result, "python -m launch")
  assert headers(result.stdout) == list(options_lib.GROUPS)
  listed = re.findall(r"^  --(\w+)[= ]", result.stdout, re.MULTILINE)
  assert listed == [option.name for option in options_lib.OPTIONS]
  footer = result.stdout.split("\noutput:\n")[1]
  assert "Exit codes: 0 done; 2 bad input" in footer
  assert "42 stopped" in footer and "--helpfull" in footer


def test_launch_help_shows_defaults_and_wraps_help():
  out = run_tool("launch", "--help").stdout
  assert "\n  --dataset=digits\n      A built-in dataset:" in out
  assert "\n  --cache=false\n" in out
  assert "\n  --image_size=256,256\n" in out
  assert "\n  --train_steps (no default)\n" in out


def test_launch_help_does_not_import_tensorflow():
  result = run_tool("launch", "--help", python_args=("-X", "importtime"))
  assert result.returncode == 0
  imported = re.findall(r"\|\s*(\S+)$", result.stderr, re.MULTILINE)
  assert "launch.cli.flags" in imported  # The measurement works.
  assert not [name for name in imported
              if name.split(".")[0] in ("tensorflow", "keras")]


def test_helpfull_adds_absl_flags_and_exits_0():
  result = run_tool("launch", "--helpfull")
  assert result.returncode == 0, result.stderr
  found = headers(result.stdout)
  assert found[:len(options_lib.GROUPS)] == list(options_lib.GROUPS)
  assert "absl.logging" in found and "--verbosity=" in result.stdout


def test_local_help_lists_supervisor_flags():
  result = run_tool("launch.local", "--help")
  assert_clean_help(result, "python -m launch.local")
  assert headers(result.stdout) == ["supervisor flags"]
  assert "\n  --workers=2\n" in result.stdout
  assert "\n  --model_dir" not in result.stdout  # Training flags: elsewhere.
  assert "python -m launch --help" in result.stdout


@pytest.mark.parametrize("module,flag", [
    ("launch.predict", "--export_dir"),
    ("launch.write_tfrecords", "--output_dir"),
])
def test_other_tools_list_their_own_flags(module, flag):
  result = run_tool(module, "--help")
  assert_clean_help(result, f"python -m {module}")
  assert headers(result.stdout) == ["flags"]
  assert f"\n  {flag} (no default)\n" in result.stdout
  assert "--verbosity" not in result.stdout  # absl's: --helpfull only.


def test_bad_flag_is_still_one_error_line_and_exit_2():
  result = run_tool("launch", "--no_such_flag=1")
  assert result.returncode == 2
  assert result.stdout == ""
  assert result.stderr.startswith("error: ")
  assert len(result.stderr.strip().splitlines()) == 1


def test_help_after_a_double_dash_is_not_a_request():
  assert usage.help_requested(["--epochs=2", "-h"]) == "short"
  assert usage.help_requested(["--helpfull"]) == "full"
  assert usage.help_requested(["--", "--help"]) is None
  assert usage.help_requested(["--model_dir=/tmp/h"]) is None


def test_renderer_groups_by_first_appearance_and_wraps():
  flag_values = flags.FlagValues()
  flags.DEFINE_integer("steps", 10, "Steps.", flag_values=flag_values)
  flags.DEFINE_string("name", None, "word " * 30, flag_values=flag_values)
  flags.DEFINE_boolean("fast", True, "Go.", flag_values=flag_values)
  flag_values["steps"].group = "run"
  flag_values["fast"].group = "run"
  sections = usage.flag_sections(flag_values, ungrouped="other")
  assert [(header, [flag.name for flag in section_flags])
          for header, section_flags in sections] == [
              ("run", ["steps", "fast"]), ("other", ["name"])]
  text = usage.format_help(
      program="prog", doc="`prog`: does a thing.\n\nExit codes: 0 done.",
      sections=sections, notes=["A note."], width=40)
  lines = text.splitlines()
  assert lines[:3] == ["usage: prog [--flag=value ...]", "", "Does a thing."]
  assert "  --fast=true" in lines and "  --name (no default)" in lines
  assert max(len(line) for line in lines) <= 40
  assert text.endswith("\n\nExit codes: 0 done.\n\nA note.\n")


def test_the_installed_tfharness_script_has_the_same_help():
  import os  # pylint: disable=import-outside-toplevel
  script = os.path.join(os.path.dirname(sys.executable), "tfharness")
  if not os.path.exists(script):
    pytest.skip("the tfharness script is installed by `pip install -e .`")
  result = subprocess.run([script, "--help"], capture_output=True, text=True,
                          env=harness_env(COLUMNS="80"), timeout=60,
                          check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith("usage: tfharness")
  assert "Exit codes: 0 done" in result.stdout
  assert "Train a Keras model with tf.distribute" in result.stdout
