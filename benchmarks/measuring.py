"""What the data benchmarks share: a loop timer, fresh processes, class
folders of PNGs and interleaved rounds."""

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


def run_fresh(module: str, args: list[str], what: str):
  """Runs `python -m module *args` in a fresh process; its last line, as JSON.

  Exits with the process's last lines when it fails (`what` names it).
  """
  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run([sys.executable, "-m", module, *args],
                          cwd=REPO_ROOT, capture_output=True, text=True,
                          check=False, env=env)
  if result.returncode:
    sys.exit(f"error: {what} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def write_pngs(directory: str, count: int, size: tuple[int, int],
               channels: int) -> None:
  """`count` learnable PNGs (noisy class prototypes) in `directory/c0..c9`.

  Written aside and renamed: the folder is complete or absent.
  """
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(0)
  prototypes = rng.integers(0, 256, (10, *size, channels))
  staging = directory + ".partial"
  for index in range(count):
    label = index % 10
    image = np.clip(
        prototypes[label] + rng.integers(-60, 61, (*size, channels)),
        0, 255).astype(np.uint8)
    folder = os.path.join(staging, f"c{label}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{index:06d}.png"), "wb") as stream:
      stream.write(tf.io.encode_png(image).numpy())
  os.replace(staging, directory)


def interleaved(sizes, variants, rounds: int, measure, unit: str) -> dict:
  """{size: {variant: [measure(size, variant) per round]}}, the variants
  interleaved round by round so that machine noise hits them alike; each
  result is printed to stderr as it comes."""
  results = {}
  for size in sizes:
    results[size] = {variant: [] for variant in variants}
    for _ in range(rounds):
      for variant in variants:
        results[size][variant].append(measure(size, variant))
        print(f"{size:,} {unit}, {variant}: {results[size][variant][-1]}",
              file=sys.stderr, flush=True)
  return results


def write_json(path: str | None, results: dict) -> None:
  """`results` of `interleaved` to `path`, if given."""
  if path:
    with open(path, "w", encoding="utf-8") as stream:
      json.dump({str(size): runs for size, runs in results.items()}, stream,
                indent=2)
