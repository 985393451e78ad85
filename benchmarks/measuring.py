"""What the data benchmarks share: a loop timer and fresh processes."""

import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def loop_timer():
  """A Keras callback noting when each batch (harness: each loop) ends."""
  import keras

  class Timer(keras.callbacks.Callback):
    ends = []

    def on_train_batch_end(self, batch, logs=None):
      del batch, logs
      self.ends.append(time.perf_counter())

  return Timer()


def examples_per_s(ends: list[float], steps_per_end: int,
                   batch_size: int) -> float:
  """Examples/s after the first end (tracing and first batches left out)."""
  if len(ends) < 2:
    return 0.0
  return (len(ends) - 1) * steps_per_end * batch_size / (ends[-1] - ends[0])


def run_fresh(module: str, args: list[str], what: str) -> dict:
  """Runs `python -m module *args` in a fresh process; its last JSON line.

  Exits with the process's last lines when it fails (`what` names it).
  """
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-m", module, *args],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          check=False, env=env)
  if result.returncode:
    sys.exit(f"error: {what} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])
