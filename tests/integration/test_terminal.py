"""What a person sees in a terminal: a real pseudo-terminal of 80 columns."""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.processes import REPO_ROOT, harness_env

COLUMNS = 80
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_in_terminal(args: list[str], *, columns: int = COLUMNS,
                    timeout: float = 180, **env) -> tuple[int, str]:
  """Runs `python -m launch ARGS` with stdout and stderr on a pseudo-TTY."""
  controller, terminal = pty.openpty()
  fcntl.ioctl(terminal, termios.TIOCSWINSZ,
              struct.pack("HHHH", 24, columns, 0, 0))
  environment = harness_env(**env)
  environment.pop("TF_CPP_MIN_LOG_LEVEL")  # As a person's shell has it.
  environment.pop("COLUMNS", None)
  process = subprocess.Popen([sys.executable, "-m", "launch", *args],
                             env=environment, cwd=REPO_ROOT,
                             stdin=subprocess.DEVNULL, stdout=terminal,
                             stderr=terminal)
  os.close(terminal)
  chunks, deadline = [], time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      chunk = os.read(controller, 65536)
    except OSError:  # EIO: every writer closed the terminal.
      break
    if not chunk:
      break
    chunks.append(chunk)
  os.close(controller)
  return process.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def screen_rows(output: str) -> list[str]:
  """Every text the terminal showed on one row: each redraw and each line."""
  rows = []
  for line in output.replace("\r\n", "\n").split("\n"):
    rows += [_ANSI.sub("", part) for part in line.split("\r")]
  return [row for row in rows if row]


@pytest.mark.slow
def test_a_run_in_an_80_column_terminal(tmp_path):
  returncode, output = run_in_terminal([
      "--train_steps=300", "--steps_per_loop=25", "--eval_every=100",
      "--checkpoint_every=150", "--profile_steps=60,80",
      f"--model_dir={tmp_path}"])
  assert returncode == 0, output[-3000:]
  rows = screen_rows(output)
  # The bar and its redraws never wrap (a wrapped redraw leaves a stale
  # row each time); neither do the lines of this run (but for the long
  # paths of pytest's temporary directory).
  fixed = [row for row in rows if str(tmp_path) not in row]
  assert max(len(row) for row in fixed) < COLUMNS, max(fixed, key=len)
  # Start-up: at most 2 lines before the strategy line, no error-level
  # C++ line on a machine without a GPU.
  first = next(i for i, row in enumerate(rows) if "Strategy" in row)
  assert first <= 2, rows[:first + 1]
  assert not any(row.startswith("E0000") for row in rows)
  # No log line glued onto the bar: each log line starts a row of its own.
  saves = [row for row in rows if "Saved checkpoint" in row]
  assert len(saves) == 2 and all(row.startswith("Saved") for row in saves)
  assert all("ETA" not in row for row in saves)
  # One permanent line per evaluation with train means and val_ metrics.
  lines = output.replace("\r\n", "\n").split("\n")
  epochs = [_ANSI.sub("", line.split("\r")[-1]) for line in lines
            if re.search(r"step \d+/300 - loss", line)]
  assert [line.split(" - ")[0] for line in epochs] == [
      "step 100/300", "step 200/300", "step 300/300"]
  assert all("val_accuracy" in line or "val_accuracy" in next_line
             for line, next_line in zip(lines, lines[1:])
             if re.search(r"step \d+/300 - loss", line))
  # One voice: no absl prefixes (I1123 12:00:00.000 123 file.py:1]).
  assert not any(re.match(r"[IWEF]\d{4} ", row) for row in rows), rows
  assert "Final eval at step 300:" in output
  # The bar is still drawn (and the profiler traced the steps).
  assert "step 300/300 [" in output and "ETA" in output
  traces = list((tmp_path / "summaries" / "train" / "plugins" / "profile")
                .glob("*/*.xplane.pb"))
  assert len(traces) == 1 and traces[0].stat().st_size > 0


@pytest.mark.slow
def test_verbose_shows_tensorflows_own_lines(tmp_path):
  returncode, output = run_in_terminal([
      "--train_steps=10", "--steps_per_loop=10", "--verbose",
      f"--model_dir={tmp_path}"])
  assert returncode == 0, output[-3000:]
  rows = screen_rows(output)
  first = next(i for i, row in enumerate(rows) if "Strategy" in row)
  assert any(re.match(r"[IWE]\d{4} ", row) for row in rows[:first]), rows
