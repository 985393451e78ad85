"""Data at scale: a user's CSV of growing size, the harness vs a Keras user.

  python -m benchmarks.data_scale                       # 100k and 1M rows
  python -m benchmarks.data_scale --rows=100000,1000000,4000000 --rounds=3
  python -m benchmarks.data_scale --smoke               # tiny (the test's)

For each size, a CSV like a flattened MNIST (a `label` column 0..9 and
784 pixel columns of whole numbers 0..255, ~1.9 KB a row) is generated
once in `--work_dir`. Each variant then trains the same model (Flatten ->
Dense(64) -> Dense(10), Adam, batch 256, one CPU device) for `--steps`
steps, in a fresh process:

* `harness`: `datasets.from_csv` + `launch.fit`, with an empty cache
  folder (the one-time conversion counted in the start-up);
* `harness_cached`: the same with the conversion already in the cache (a
  second run, a resume);
* `pandas`: `pd.read_csv` -> numpy -> `keras.Model.fit`;
* `make_csv_dataset`: `tf.data.experimental.make_csv_dataset` ->
  `keras.Model.fit`.

Variants are interleaved round by round. Reported per run: start-up
(process start to the end of the first training step), peak resident
memory (`ru_maxrss`: TensorFlow's own ~0.5 GB included), and examples/s
over the steps after the first call (the harness runs 20 steps per
compiled call, Keras `fit` its default 1).
Medians over rounds.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

from benchmarks import measuring

_STARTED = time.perf_counter()
VARIANTS = ("harness", "harness_cached", "pandas", "make_csv_dataset")
_COLUMNS = 784
_BATCH = 256
_POOL = 2048
_LOOP = 20  # The harness's steps per compiled call (Keras fit's: 1).


def write_csv(path: str, rows: int, columns: int = _COLUMNS) -> None:
  """A CSV of `rows` rows: `label`, then `columns` pixels 0..255.

  Rows are drawn from a pool of noisy class prototypes (70 % zeros, as in
  MNIST), so writing millions of rows costs string joins only.
  """
  import numpy as np
  rng = np.random.default_rng(0)
  prototypes = rng.integers(0, 256, (10, columns)) * (
      rng.random((10, columns)) < 0.3)
  pool = []
  for index in range(_POOL):
    label = index % 10
    pixels = np.clip(prototypes[label] + rng.integers(-40, 41, columns), 0,
                     255) * (prototypes[label] > 0)
    pool.append(f"{label}," + ",".join(map(str, pixels.tolist())) + "\n")
  header = "label," + ",".join(f"p{i}" for i in range(columns)) + "\n"
  staging = path + ".partial"
  with open(staging, "w", encoding="utf-8") as stream:
    stream.write(header)
    for start in range(0, rows, 65_536):
      picks = rng.integers(0, _POOL, min(65_536, rows - start))
      stream.write("".join(pool[i] for i in picks))
  os.replace(staging, path)


def _model():
  import keras
  model = keras.Sequential([
      keras.Input((_COLUMNS,)), keras.layers.Flatten(),
      keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  return model


def _measure(variant: str, csv_path: str, steps: int, cache_dir: str):
  """Trains in this process; returns the row of numbers."""
  timer = measuring.loop_timer()
  if variant.startswith("harness"):
    from datasets import from_csv
    from launch import fit
    source = from_csv(csv_path, label_column="label", cache_dir=cache_dir)
    with tempfile.TemporaryDirectory() as model_dir:
      fit(_model, source, model_dir=model_dir, global_batch_size=_BATCH,
          train_steps=steps, steps_per_loop=_LOOP, cpu_devices=1,
          checkpoint_every=0, progress="none", callbacks=[timer])
  elif variant == "pandas":
    import numpy as np
    import pandas as pd
    frame = pd.read_csv(csv_path)
    y = frame.pop("label").to_numpy(np.int32)
    x = frame.to_numpy(np.float32)
    del frame
    _model().fit(x, y, batch_size=_BATCH, epochs=1, steps_per_epoch=steps,
                 shuffle=True, verbose=0, callbacks=[timer])
  elif variant == "make_csv_dataset":
    import tensorflow as tf
    dataset = tf.data.experimental.make_csv_dataset(
        csv_path, batch_size=_BATCH, label_name="label", num_epochs=None,
        shuffle=True, shuffle_seed=0)
    dataset = dataset.map(lambda x, y: (tf.cast(tf.stack(
        list(x.values()), axis=1), tf.float32), y))
    _model().fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0,
                 callbacks=[timer])
  else:
    raise ValueError(variant)
  ends = timer.ends
  rate = measuring.examples_per_s(
      ends, _LOOP if variant.startswith("harness") else 1, _BATCH)
  return {"startup_s": ends[0] - _STARTED,
          "peak_rss_mb": resource.getrusage(
              resource.RUSAGE_SELF).ru_maxrss / 1024,
          "examples_per_s": rate}


def _run(variant: str, csv_path: str, steps: int, cache_dir: str) -> dict:
  """One measurement in a fresh process."""
  if variant == "harness":
    shutil.rmtree(cache_dir, ignore_errors=True)
  return measuring.run_fresh(
      "benchmarks.data_scale",
      ["--measure", variant, f"--csv={csv_path}", f"--steps={steps}",
       f"--cache_dir={cache_dir}"], f"{variant} on {csv_path}")


def _table(results: dict) -> str:
  lines = ["| rows | variant | start-up s | peak RSS MB | examples/s |",
           "|---:|---|---:|---:|---:|"]
  for rows, by_variant in results.items():
    for variant, runs in by_variant.items():
      median = {key: statistics.median(run[key] for run in runs)
                for key in runs[0]}
      lines.append(f"| {rows:,} | {variant} | {median['startup_s']:.1f} |"
                   f" {median['peak_rss_mb']:,.0f} |"
                   f" {median['examples_per_s']:,.0f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", default="100000,1000000",
                      help="Comma-separated CSV sizes in rows.")
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--work_dir", default=os.path.join(
      tempfile.gettempdir(), "tfharness-data-scale"))
  parser.add_argument("--smoke", action="store_true",
                      help="2,000 rows, 40 steps, one round.")
  parser.add_argument("--output", help="Also write the results as JSON.")
  parser.add_argument("--measure", help=argparse.SUPPRESS)
  parser.add_argument("--csv", help=argparse.SUPPRESS)
  parser.add_argument("--cache_dir", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.measure:
    print(json.dumps(_measure(args.measure, args.csv, args.steps,
                              args.cache_dir)))
    return
  sizes = [int(n) for n in args.rows.split(",")]
  steps, rounds = args.steps, args.rounds
  if args.smoke:
    sizes, steps, rounds = [2000], 2 * _LOOP, 1
  variants = [v for v in args.variants.split(",") if v]
  unknown = set(variants) - set(VARIANTS)
  if unknown:
    sys.exit(f"error: --variants takes {', '.join(VARIANTS)}, not"
             f" {', '.join(sorted(unknown))}.")
  os.makedirs(args.work_dir, exist_ok=True)

  def measure(rows: int, variant: str) -> dict:
    csv_path = os.path.join(args.work_dir, f"rows-{rows}.csv")
    if not os.path.isfile(csv_path):
      write_csv(csv_path, rows)
    cache_dir = os.path.join(args.work_dir, f"cache-{rows}")
    if variant == "harness_cached" and not os.path.isdir(cache_dir):
      _run("harness", csv_path, 1, cache_dir)  # Fills the cache.
    return _run(variant, csv_path, steps, cache_dir)

  results = measuring.interleaved(sizes, variants, rounds, measure, "rows")
  print(_table(results))
  measuring.write_json(args.output, results)


if __name__ == "__main__":
  main()
