"""Input-bound image training: the harness's `fit` vs Keras `fit`.

  python -m benchmarks.image_fit                       # 2k and 20k files
  python -m benchmarks.image_fit --files=2000,20000,100000 --rounds=3
  python -m benchmarks.image_fit --smoke               # tiny (the test's)

A folder of 32x32 RGB PNGs in 10 class subfolders (noisy class prototypes)
is written once per size in `--work_dir`. Each variant trains the same
small model (Rescaling -> Flatten -> Dense(64) -> Dense(10), Adam, batch
256, one CPU device), so decoding the images, not the model, sets the pace:

* `harness`: `datasets.from_image_directory` + `launch.fit` (its defaults);
* `harness_keras_data`: Keras's `image_dataset_from_directory` handed to
  `launch.fit` through `datasets.from_dataset_fn`;
* `keras_fit`: `image_dataset_from_directory` + `keras.Model.fit`, what a
  Keras user writes.

Each measurement runs in a fresh process; variants are interleaved round by
round; examples/s counts the steps after the first loop (tracing and the
first batches excluded). Medians over rounds.
"""

import argparse
import json
import os
import statistics
import tempfile

from benchmarks import measuring

VARIANTS = ("harness", "harness_keras_data", "keras_fit")
_SIZE = (32, 32)
_BATCH = 256
_LOOP = 20  # The harness's steps per compiled call (Keras fit's: 1).


def write_images(directory: str, count: int) -> None:
  """`count` learnable 32x32 RGB PNGs under `directory/c0` .. `c9`."""
  measuring.write_pngs(directory, count, _SIZE, channels=3)


def _model():
  import keras
  model = keras.Sequential([
      keras.Input((*_SIZE, 3)), keras.layers.Rescaling(1 / 255),
      keras.layers.Flatten(), keras.layers.Dense(64, activation="relu"),
      keras.layers.Dense(10)])
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), metrics=["accuracy"])
  return model


def _keras_dataset(directory: str):
  import keras
  return keras.utils.image_dataset_from_directory(
      directory, image_size=_SIZE, batch_size=_BATCH, seed=0, verbose=False)


def _measure(variant: str, directory: str, steps: int) -> dict:
  """Trains in this process; returns examples/s after the first loop."""
  timer, steps_per_end = measuring.loop_timer(), _LOOP
  if variant == "keras_fit":
    steps_per_end = 1
    _model().fit(_keras_dataset(directory).repeat(), epochs=1,
                 steps_per_epoch=steps, verbose=0, callbacks=[timer])
  else:
    import datasets
    from launch import fit
    if variant == "harness":
      source = datasets.from_image_directory(directory, image_size=_SIZE)
    else:
      source = datasets.from_dataset_fn(
          lambda context=None: _keras_dataset(directory))
    with tempfile.TemporaryDirectory() as model_dir:
      fit(_model, source, model_dir=model_dir, global_batch_size=_BATCH,
          train_steps=steps, steps_per_loop=_LOOP, cpu_devices=1,
          progress="none", callbacks=[timer])
  return {"examples_per_s": measuring.examples_per_s(
      timer.ends, steps_per_end, _BATCH)}


def _run(variant: str, directory: str, steps: int) -> dict:
  """One measurement in a fresh process."""
  return measuring.run_fresh(
      "benchmarks.image_fit",
      ["--measure", variant, f"--images={directory}", f"--steps={steps}"],
      f"{variant} on {directory}")


def _table(results: dict) -> str:
  lines = ["| files | harness ex/s | harness, Keras's data ex/s |"
           " Keras fit ex/s | harness / Keras fit |",
           "|---:|---:|---:|---:|---:|"]
  for files, by_variant in results.items():
    rate = {variant: statistics.median(run["examples_per_s"] for run in runs)
            for variant, runs in by_variant.items()}
    ratio = (f"{rate['harness'] / rate['keras_fit']:.2f}"
             if rate.get("harness") and rate.get("keras_fit") else "-")
    lines.append(f"| {files:,} | {rate.get('harness', 0):,.0f} |"
                 f" {rate.get('harness_keras_data', 0):,.0f} |"
                 f" {rate.get('keras_fit', 0):,.0f} | {ratio} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--files", default="2000,20000",
                      help="Comma-separated folder sizes in images.")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--work_dir", default=os.path.join(
      tempfile.gettempdir(), "tfharness-image-fit"))
  parser.add_argument("--smoke", action="store_true",
                      help="600 images, 60 steps, one round.")
  parser.add_argument("--output", help="Also write the results as JSON.")
  parser.add_argument("--measure", help=argparse.SUPPRESS)
  parser.add_argument("--images", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.measure:
    print(json.dumps(_measure(args.measure, args.images, args.steps)))
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Writing the PNGs.
  sizes = [int(n) for n in args.files.split(",")]
  steps, rounds = args.steps, args.rounds
  if args.smoke:
    sizes, steps, rounds = [600], 3 * _LOOP, 1
  os.makedirs(args.work_dir, exist_ok=True)

  def measure(files: int, variant: str) -> dict:
    directory = os.path.join(args.work_dir, f"images-{files}")
    if not os.path.isdir(directory):
      write_images(directory, files)
    return _run(variant, directory, steps)

  results = measuring.interleaved(sizes, VARIANTS, rounds, measure, "files")
  print(_table(results))
  measuring.write_json(args.output, results)


if __name__ == "__main__":
  main()
