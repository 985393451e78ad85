"""`python -m launch.write_tfrecords`: numpy arrays -> sharded TFRecord files.

  python -m launch.write_tfrecords --input=mnist.npz --output_dir=/data/mnist \\
      --shards=8 --eval_shards=2 --feature_scale=0.00392156862745098
  python -m launch --dataset=tfrecord --data_dir=/data/mnist ...

The `.npz` holds `x_train`, `y_train`, `x_test`, `y_test` (the layout of
Keras's mnist.npz); `x_*` keep their dtype (uint8 stays 1 byte per value)
and the reader multiplies by `--feature_scale` after the cast to float32.
Exit codes: 0 written, 2 bad input (nothing is left behind).
"""

import os
import shutil
import zipfile

from absl import app
from absl import flags

from launch.cli import console
from launch.cli.errors import fail, parse_flags

_INPUT = flags.DEFINE_string(
    "input", None, ".npz with x_train, y_train, x_test, y_test.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "New directory for the files and dataset.json.")
_SHARDS = flags.DEFINE_integer(
    "shards", 8, "Training files; at least the number of workers lets each"
    " worker read whole files.")
_EVAL_SHARDS = flags.DEFINE_integer("eval_shards", 1, "Eval files.")
_FEATURE_SCALE = flags.DEFINE_float(
    "feature_scale", None, "Factor applied to float32 features when read;"
    " default 1/255 for uint8 features, else 1.")

_KEYS = ("x_train", "y_train", "x_test", "y_test")



def _load(path: str) -> dict:
  import numpy as np
  if not os.path.isfile(path):
    fail(f"--input={path} does not exist.")
  try:
    with np.load(path, allow_pickle=False) as archive:
      missing = [key for key in _KEYS if key not in archive.files]
      if missing:
        fail(f"{path} lacks {', '.join(missing)}; it needs"
              f" {', '.join(_KEYS)}.")
      return {key: archive[key] for key in _KEYS}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
    fail(f"{path} is not a readable .npz ({type(error).__name__}).")


def main(argv: list[str]) -> None:
  del argv  # The program name only: parse_flags refuses the rest.
  if not _INPUT.value or not _OUTPUT_DIR.value:
    fail("--input and --output_dir are required.")
  arrays = _load(_INPUT.value)
  scale = _FEATURE_SCALE.value
  if scale is None:
    scale = 1 / 255 if arrays["x_train"].dtype.name == "uint8" else 1.0
  console.import_tensorflow()  # Quietly, after the checks.
  from datasets import tfrecord  # Imports TensorFlow: after the checks.
  from datasets.errors import DataError
  created = not os.path.exists(_OUTPUT_DIR.value)
  try:
    written = tfrecord.write_dataset(
        _OUTPUT_DIR.value,
        {"train": (arrays["x_train"], arrays["y_train"]),
         "eval": (arrays["x_test"], arrays["y_test"])},
        num_shards={"train": _SHARDS.value, "eval": _EVAL_SHARDS.value},
        feature_scale=scale)
  except DataError as error:
    if created:
      shutil.rmtree(_OUTPUT_DIR.value, ignore_errors=True)
    fail(str(error))
  print(f"Wrote {written.num_train_examples} training examples in"
        f" {len(written.files['train'])} files and {written.num_eval_examples}"
        f" eval examples in {len(written.files['eval'])} to"
        f" {_OUTPUT_DIR.value}.", flush=True)


def run() -> None:
  console.configure_logging(owns_stderr=True)
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
