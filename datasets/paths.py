"""`from_path`: a Source of the kind a path names (a command line's train_data).

* `*.csv`, or a glob of them: `from_csv` (needs `label_column`).
* `*.npz`: `from_arrays` of its keys: `x` and `y`; or `features` and
  `labels`; or `x_<name>` / `y_<name>` for named inputs / outputs (several
  `x_*` keys give a dict of inputs, several `y_*` a dict of outputs).
* A directory with `dataset.json` (written by `python -m
  launch.write_tfrecords`): its train split.
* A directory of class subfolders of images: `from_image_directory`
  (`image_size`, default 256x256 as Keras).
* `*.tfrecord` / `*.tfrecords`, or a glob of them: `from_tfrecords` with
  the schema of the `schema.json` in the (first) file's directory.
"""

import glob
import os
import zipfile

import numpy as np

from datasets.errors import DataError, argument

KINDS = ("a .csv file or glob (with label_column)",
         "an .npz with x/y, features/labels or x_<name>/y_<name> keys",
         "a directory of class subfolders of images",
         "a .tfrecord file or glob with a schema.json beside it",
         "a directory with dataset.json")


def _npz_arrays(path: str):
  """(features, labels) of an .npz by the documented key names."""
  try:
    with np.load(path, allow_pickle=False) as archive:
      data = {key: archive[key] for key in archive.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
    raise DataError(f"{path} is not a readable .npz file"
                    f" ({type(error).__name__}).") from None
  for x_key, y_key in (("x", "y"), ("features", "labels")):
    if x_key in data and y_key in data:
      return data[x_key], data[y_key]
  inputs = {k[2:]: v for k, v in data.items() if k.startswith("x_")}
  outputs = {k[2:]: v for k, v in data.items() if k.startswith("y_")}
  if not inputs or not outputs:
    raise DataError(f"{path} holds the keys {', '.join(sorted(data))}; give"
                    " x and y, features and labels, or x_<input> and"
                    " y_<output> arrays.")
  unpack = lambda d: next(iter(d.values())) if len(d) == 1 else d
  return unpack(inputs), unpack(outputs)


def _is_image_directory(path: str) -> bool:
  return any(entry.is_dir() for entry in os.scandir(path))


def from_path(path: str, *, label_column: str | None = None,
              image_size=None, task: str = "auto", class_names=None,
              skip_unreadable: bool = False, **options):
  """The Source of the data at `path`, its kind told by its name.

  Args:
    path: See the module docstring for the kinds.
    label_column: CSV only: the label's column (required there).
    image_size: Image directories only: (height, width); default 256x256.
    task: "auto", "classification" or "regression" (CSV and .npz labels;
      image folders are classes).
    class_names: CSV eval data: the training data's class names.
    skip_unreadable: Image directories only: leave out unreadable files.
    **options: Passed to the constructor (e.g. `preprocess`, `scale`).

  Returns:
    One Source (a directory with dataset.json gives its train split).

  Raises:
    DataError: If the path is of no known kind or its data is unusable.
  """
  from datasets import arrays, csv_source, images  # pylint: disable=import-outside-toplevel
  from datasets.labels import check_task  # pylint: disable=import-outside-toplevel
  check_task(task)
  path = os.fspath(path)
  lower = path.lower()
  if skip_unreadable and not (os.path.isdir(path)
                              and _is_image_directory(path)):
    raise DataError(f"{argument('skip_unreadable')} applies to directories of"
                    f" images, not to {path}.")
  has_glob = glob.has_magic(path)
  if lower.endswith(".csv"):
    return csv_source.from_csv(path, label_column=label_column, task=task,
                               class_names=class_names, **options)
  if lower.endswith(".npz") and not has_glob:
    if not os.path.isfile(path):
      raise DataError(f"{path} does not exist.")
    features, labels = _npz_arrays(path)
    return arrays.from_arrays(features, labels, task=task,
                              name=os.path.basename(path), **options)
  if lower.endswith((".tfrecord", ".tfrecords")):
    from datasets import tfrecords  # pylint: disable=import-outside-toplevel
    first = sorted(glob.glob(path))[:1] if has_glob else [path]
    directory = os.path.dirname(first[0]) if first else os.path.dirname(path)
    schema = tfrecords.read_schema(
        os.path.join(directory, tfrecords.SCHEMA_FILE))
    num_classes = schema.pop("num_classes")
    return tfrecords.from_tfrecords(path, num_classes=num_classes, **schema,
                                    **options)
  if task == "regression" and os.path.isdir(path):
    raise DataError(f"{path} is a directory of classes, so"
                    f" {argument('task')}=regression"
                    " does not apply to it.")
  if os.path.isdir(path):
    from datasets import tfrecord  # pylint: disable=import-outside-toplevel
    if os.path.isfile(os.path.join(path, tfrecord.METADATA)):
      return tfrecord.load_sources(path, **options)[0]
    if _is_image_directory(path):
      return images.from_image_directory(
          path, image_size=image_size or images.DEFAULT_IMAGE_SIZE,
          skip_unreadable=skip_unreadable, **options)
    raise DataError(f"{path} has no class subfolders of images and no"
                    f" dataset.json; give one of: {'; '.join(KINDS)}.")
  if not os.path.exists(path) and not has_glob:
    raise DataError(f"{path} does not exist.")
  raise DataError(f"{path} is of no known kind; give one of:"
                  f" {'; '.join(KINDS)}.")
