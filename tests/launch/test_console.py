"""The run's stderr: TensorFlow's C++ start-up lines filtered, errors kept."""

import subprocess
import sys

import pytest

from launch.cli import console
from launch.cli import stderr_filter
from tests.processes import REPO_ROOT, harness_env

NOTICE = (b"WARNING: All log messages before absl::InitializeLog() is called"
          b" are written to STDERR")
ONEDNN = (b"I0000 00:00:1795424308.260716   14533 port.cc:153] oneDNN custom"
          b" operations are on.")
DRIVERS = (b"I0000 00:00:1795424308.261117   14533 cudart_stub.cc:31] Could"
           b" not find cuda drivers on your machine, GPU will not be used.")
CUINIT = (b"E0000 00:00:1795424309.418158   14533 cuda_platform.cc:52] failed"
          b" call to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)")
DLOPEN = (b"W0000 00:00:1795424309.418158   14533 gpu_device.cc:2342] Cannot"
          b" dlopen some GPU libraries. Skipping registering GPU devices...")
REAL_ERROR = (b"E0000 00:00:1795424309.5   14533 op_kernel.cc:1] Could not"
              b" allocate memory")
OLD_CUINIT = (b"2024-01-01 12:00:00.123456: E external/local_xla/xla/stream_"
              b"executor/cuda/cuda_driver.cc:282] failed call to cuInit")
GUARD = (b"I0000 00:00:1795424308.449718   27124 cpu_feature_guard.cc:227]"
         b" This TensorFlow binary is optimized")
GUARD_MORE = b"To enable the following instructions: AVX2 AVX512F, rebuild."


@pytest.mark.parametrize("line, has_gpu, kept", [
    (NOTICE, False, False), (ONEDNN, False, False), (DRIVERS, False, False),
    (CUINIT, False, False), (OLD_CUINIT, False, False),
    (CUINIT, True, True),  # With an NVIDIA device it is a real error.
    (DLOPEN, False, False), (DLOPEN, True, True),
    (REAL_ERROR, False, True), (b"Python's own line", False, True),
])
def test_which_start_up_lines_a_person_sees(line, has_gpu, kept):
  assert stderr_filter.keep(line, False, has_gpu) is kept


def test_a_dropped_lines_continuation_goes_with_it():
  assert not stderr_filter.keep(GUARD, False, False)
  assert not stderr_filter.keep(GUARD_MORE, True, False)
  assert stderr_filter.keep(GUARD_MORE, False, False)


def _run(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], capture_output=True,
                        env=harness_env(), cwd=REPO_ROOT, timeout=60,
                        check=False)


def test_the_filter_runs_on_file_descriptor_2_and_then_steps_aside():
  lines = b"\n".join([NOTICE, ONEDNN, CUINIT, REAL_ERROR, b"partial"])
  result = _run(
      "import os, sys\n"
      "from launch.cli import console\n"
      "console._has_nvidia_device = lambda: False\n"
      "with console.quiet_native_startup():\n"
      f"  os.write(2, {lines!r})\n"
      "  print('python line', file=sys.stderr, flush=True)\n"
      "os.write(2, b'after\\n')\n")
  assert result.returncode == 0
  assert result.stderr == REAL_ERROR + b"\npartialpython line\nafter\n"


def test_a_fatal_line_is_shown_though_the_process_aborts():
  result = _run(
      "import os\n"
      "from launch.cli import console\n"
      "with console.quiet_native_startup():\n"
      "  os.write(2, b'F0000 00:00:1.0  1 x.cc:1] Check failed: boom\\n')\n"
      "  os.abort()\n")
  assert result.returncode != 0
  assert b"Check failed: boom" in result.stderr


def test_info_lines_of_every_harness_package_pass_the_filter():
  """The harness's own INFO lines show, from every sub-package's depth."""
  import logging as pylogging
  import launch.run.execute as execute
  import trainer.checkpointing as checkpointing
  keep = console._Filter()  # pylint: disable=protected-access
  for module in (execute, checkpointing, console):
    record = pylogging.LogRecord("absl", pylogging.INFO, module.__file__, 1,
                                 "a line", None, None)
    assert keep.filter(record), module.__file__
  outside = pylogging.LogRecord("absl", pylogging.INFO, "/elsewhere/x.py", 1,
                                "a line", None, None)
  assert not keep.filter(outside)
