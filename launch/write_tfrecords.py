"""`python -m launch.write_tfrecords`: a dataset -> sharded TFRecord files.

  python -m launch.write_tfrecords --input=mnist.npz --output_dir=/data/mnist \\
      --shards=8 --eval_shards=2 --feature_scale=0.00392156862745098
  python -m launch.write_tfrecords --input=train.csv --eval_input=test.csv \\
      --label_column=species --output_dir=/data/iris
  python -m launch.write_tfrecords --input=photos/train \\
      --eval_input=photos/test --image_size=64,64 --output_dir=/data/photos
  python -m launch --dataset=tfrecord --data_dir=/data/mnist ...

Inputs, streamed (one chunk in memory at a time, so a dataset larger than
memory can be written):
* an `.npz` with `x_train`, `y_train`, `x_test`, `y_test` (the layout of
  Keras's mnist.npz); `x_*` keep their dtype (uint8 stays 1 byte per
  value) and the reader multiplies by `--feature_scale` (default 1/255 for
  uint8, else 1) after the cast to float32;
* CSV files (a file or a glob; `--label_column`), read as `from_csv`
  reads them, features in the narrowest exact dtype, not rescaled;
* a directory of class subfolders of images (`--image_size`,
  `--color_mode`), decoded and resized as `from_image_directory` does and
  kept as uint8 pixels 0..255 (not rescaled).
CSV files and image folders take their eval split from `--eval_input`.
Besides `dataset.json` the tool writes `record_counts.json`, so the files
also start at once through `datasets.from_tfrecords`.
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
    "input", None, "An .npz with x_train, y_train, x_test, y_test; a .csv"
    " file or glob (with --label_column); or a directory of class"
    " subfolders of images (with --image_size).")
_EVAL_INPUT = flags.DEFINE_string(
    "eval_input", None, "CSV or image input: the eval split's file(s) or"
    " directory, of the same kind as --input.")
_LABEL_COLUMN = flags.DEFINE_string(
    "label_column", None, "CSV input: the label's column.")
_IMAGE_SIZE = flags.DEFINE_list(
    "image_size", None, "Image input: height,width the images are resized"
    " to.")
_COLOR_MODE = flags.DEFINE_enum(
    "color_mode", "rgb", ["grayscale", "rgb", "rgba"], "Image input: the"
    " channels kept.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "New directory for the files and dataset.json.")
_SHARDS = flags.DEFINE_integer(
    "shards", 8, "Training files; at least the number of workers lets each"
    " worker read whole files.")
_EVAL_SHARDS = flags.DEFINE_integer("eval_shards", 1, "Eval files.")
_FEATURE_SCALE = flags.DEFINE_float(
    "feature_scale", None, "Factor applied to float32 features when read;"
    " default 1/255 for uint8 features of an .npz, else 1.")

_KEYS = ("x_train", "y_train", "x_test", "y_test")
_CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}


def _npz_splits(path: str) -> dict:
  """{split: Rows} of an .npz, streamed."""
  from datasets import tfrecord_inputs
  if _EVAL_INPUT.value:
    fail("an .npz holds its own eval split (x_test, y_test); drop"
         " --eval_input.")
  try:
    with zipfile.ZipFile(path) as archive:
      names = archive.namelist()
  except (OSError, zipfile.BadZipFile) as error:
    fail(f"{path} is not a readable .npz ({type(error).__name__}).")
  missing = [key for key in _KEYS if f"{key}.npy" not in names]
  if missing:
    fail(f"{path} lacks {', '.join(missing)}; it needs {', '.join(_KEYS)}.")
  return {"train": tfrecord_inputs.npz_rows(path, "x_train", "y_train"),
          "eval": tfrecord_inputs.npz_rows(path, "x_test", "y_test")}, None


def _other_splits(path: str, scratch: str):
  """({split: Rows}, class names) of CSV files or image folders."""
  from datasets import tfrecord_inputs
  from datasets.csv_source import expand_paths
  if not _EVAL_INPUT.value:
    fail(f"--input={path} needs --eval_input for the eval split.")
  if path.lower().endswith(".csv"):
    if not _LABEL_COLUMN.value:
      fail("CSV input needs --label_column, the name of the label's column.")
    train, names = tfrecord_inputs.csv_rows(
        expand_paths(path, "CSV"), _LABEL_COLUMN.value, scratch)
    held, _ = tfrecord_inputs.csv_rows(
        expand_paths(_EVAL_INPUT.value, "CSV"), _LABEL_COLUMN.value, scratch,
        task="regression" if train.label_is_float else "classification",
        class_names=names)
    return {"train": train, "eval": held}, names
  if not _IMAGE_SIZE.value or len(_IMAGE_SIZE.value) != 2 or not all(
      n.strip().isdigit() and int(n) > 0 for n in _IMAGE_SIZE.value):
    fail("image input needs --image_size=HEIGHT,WIDTH (two positive whole"
         " numbers).")
  size = tuple(int(n) for n in _IMAGE_SIZE.value)
  channels = _CHANNELS[_COLOR_MODE.value]
  train, names = tfrecord_inputs.image_rows(path, image_size=size,
                                            channels=channels)
  held, _ = tfrecord_inputs.image_rows(_EVAL_INPUT.value, image_size=size,
                                       channels=channels, class_names=names)
  return {"train": train, "eval": held}, names


def main(argv: list[str]) -> None:
  del argv  # The program name only: parse_flags refuses the rest.
  if not _INPUT.value or not _OUTPUT_DIR.value:
    fail("--input and --output_dir are required.")
  path, output = _INPUT.value, _OUTPUT_DIR.value
  is_npz = path.lower().endswith(".npz")
  if is_npz and not os.path.isfile(path):
    fail(f"--input={path} does not exist.")
  if not is_npz and not (path.lower().endswith(".csv") or os.path.isdir(path)):
    fail(f"--input={path} is neither an .npz, a .csv file or glob, nor a"
         " directory of class subfolders of images.")
  console.import_tensorflow()  # Quietly, after the first checks.
  from datasets import tfrecord  # Imports TensorFlow: after the checks.
  from datasets.errors import DataError
  created = not os.path.exists(output)
  scratch = os.path.join(output, ".input-scratch")
  try:
    if is_npz:
      splits, names = _npz_splits(path)
    else:
      splits, names = _other_splits(path, scratch)
    scale = _FEATURE_SCALE.value
    if scale is None:
      scale = (1 / 255 if is_npz and splits["train"].feature_dtype.name
               == "uint8" else 1.0)
    written = tfrecord.write_dataset(
        output, splits, feature_scale=scale, class_names=names,
        num_shards={"train": _SHARDS.value, "eval": _EVAL_SHARDS.value})
  except DataError as error:
    if created:
      shutil.rmtree(output, ignore_errors=True)
    fail(str(error))
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  print(f"Wrote {written.num_train_examples} training examples in"
        f" {len(written.files['train'])} files and {written.num_eval_examples}"
        f" eval examples in {len(written.files['eval'])} to"
        f" {output}.", flush=True)


def run() -> None:
  console.configure_logging(owns_stderr=True)
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
