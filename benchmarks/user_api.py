"""The library path's costs: image decoding, and compiled Keras models.

  python -m benchmarks.user_api             # both measurements, 3 rounds
  python -m benchmarks.user_api --quick     # a smoke run (the test's)

1. **Image directory vs the cnn.** PNG images (28x28 grayscale, in class
   subfolders) through `from_image_directory`'s training pipeline alone
   (read, decode, resize in the parallel map, batch), against the built-in
   cnn's training throughput on the same shape from memory over 2 logical
   CPUs. Target: the pipeline delivers >= 3x what the cnn consumes.
2. **Compiled Keras model vs the harness's Model.** The same MLP
   (784-64-10) trained through `launch.fit` as a compiled Keras model (its
   own `train_step`) and as the built-in `mlp` (`trainer.model.Model`), on
   the same in-memory data, 2 logical CPUs. Target: within 5 %.

Each measurement runs in its own process (one strategy per process; the
CPU split is per process), variants interleaved round by round; medians.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from benchmarks import measuring

_SHAPE = (28, 28)


def _pipeline_rate(directory: str, batches: int) -> float:
  """Examples/s of the image directory's training pipeline alone."""
  import tensorflow as tf
  from datasets import from_image_directory
  source = from_image_directory(directory, image_size=_SHAPE,
                                color_mode="grayscale")
  dataset = source.train_dataset_fn(global_batch_size=256, seed=0)(
      tf.distribute.InputContext())
  iterator = iter(dataset)
  for _ in range(3):  # Warm-up: tracing, thread pools.
    next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * 256 / (time.perf_counter() - start)


def _fit_rate(kind: str, steps: int) -> float:
  """Median examples/s of the train loops of one `fit` (first one out)."""
  import keras
  import numpy as np
  from datasets import from_arrays
  from launch import fit
  rng = np.random.default_rng(0)
  shape = (*_SHAPE, 1)
  x = rng.integers(0, 256, (8192, *shape)).astype(np.uint8)
  y = rng.integers(0, 10, 8192)

  def compiled_mlp():
    model = keras.Sequential([
        keras.Input(shape), keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True), metrics=["accuracy"])
    return model

  model_fn, options = {
      "cnn": (None, {"model": "cnn"}),
      "harness_mlp": (None, {"model": "mlp"}),
      "compiled_mlp": (compiled_mlp, {}),
  }[kind]
  with tempfile.TemporaryDirectory() as model_dir:
    result = fit(model_fn, from_arrays(x, y), model_dir=model_dir,
                 global_batch_size=256, train_steps=steps,
                 steps_per_loop=max(1, steps // 5), cpu_devices=2,
                 checkpoint_every=0, progress="none", **options)
  rates = [row["examples_per_sec"] for row in result.history
           if row["split"] == "train"][1:]
  return statistics.median(rates)


def _measure(kind: str, quick: bool) -> float:
  """One measurement in a fresh process."""
  return measuring.run_fresh(
      "benchmarks.user_api", ["--measure", kind, *(["--quick"] * quick)],
      f"measuring {kind}")


def _one(kind: str, quick: bool) -> float:
  if kind == "images":
    directory = os.path.join(tempfile.gettempdir(), "tfharness-bench-pngs")
    if not os.path.isdir(directory):
      measuring.write_pngs(directory, 2000, _SHAPE, channels=1)
    return _pipeline_rate(directory, 5 if quick else 40)
  steps = {"cnn": 25 if quick else 150}.get(kind, 50 if quick else 1500)
  return _fit_rate(kind, steps)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--output")
  parser.add_argument("--measure", help=argparse.SUPPRESS)
  args = parser.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if args.measure:
    print(_one(args.measure, args.quick))
    return
  kinds = ("images", "cnn", "compiled_mlp", "harness_mlp")
  runs = {kind: [] for kind in kinds}
  for _ in range(1 if args.quick else args.rounds):
    for kind in kinds:
      runs[kind].append(_measure(kind, args.quick))
  medians = {kind: statistics.median(values) for kind, values in runs.items()}
  result = {
      "examples_per_sec": medians, "runs": runs,
      "images_over_cnn": medians["images"] / medians["cnn"],
      "compiled_over_harness": (medians["compiled_mlp"]
                                / medians["harness_mlp"]),
  }
  print("| measurement | examples/s (median) |\n| --- | --- |")
  for kind in kinds:
    print(f"| {kind} | {medians[kind]:,.0f} |")
  print(f"image pipeline / cnn consumption: {result['images_over_cnn']:.2f}x"
        " (target >= 3)")
  print(f"compiled Keras MLP / harness MLP: "
        f"{result['compiled_over_harness']:.3f} (target >= 0.95)")
  if args.output:
    with open(args.output, "w", encoding="utf-8") as stream:
      json.dump(result, stream, indent=2)


if __name__ == "__main__":
  main()
