"""`from_csv`: numeric CSV files with a header row as a `Source`."""

import csv
import glob
import os

import numpy as np

from datasets import arrays
from datasets import labels as labels_lib
from datasets import source as source_lib
from datasets.errors import DataError, argument


def expand_paths(path_or_glob: str, what: str) -> list[str]:
  """The sorted files of a path or glob pattern, or DataError if none."""
  path_or_glob = os.fspath(path_or_glob)
  if glob.has_magic(path_or_glob):
    paths = sorted(p for p in glob.glob(path_or_glob) if os.path.isfile(p))
    if not paths:
      raise DataError(f"no {what} file matches {path_or_glob}.")
    return paths
  if not os.path.isfile(path_or_glob):
    raise DataError(f"{path_or_glob} is not a {what} file.")
  return [path_or_glob]


def _read_file(path: str, label_column: str, header: list[str] | None):
  """(header, features [rows, columns - 1], label cells, line numbers).

  Features must be numbers; label cells are kept as (stripped) text.
  """
  try:
    # utf-8-sig: Excel writes a byte order mark before the header.
    with open(path, newline="", encoding="utf-8-sig") as stream:
      rows = list(csv.reader(stream))
  except (OSError, UnicodeDecodeError) as error:
    raise DataError(f"{path} cannot be read ({type(error).__name__}).") from None
  rows = [(number, row) for number, row in enumerate(rows, start=1) if row]
  if not rows:
    raise DataError(f"{path} is empty; it needs a header row.")
  names = [name.strip() for name in rows[0][1]]
  if label_column not in names:
    raise DataError(f"{path} has no column {label_column!r} for"
                    f" {argument('label_column')};"
                    f" its columns are {', '.join(names)}.")
  if header is not None and names != header:
    raise DataError(f"{path} has the columns {', '.join(names)}, unlike the"
                    " first file's; all files need the same header.")
  label_index = names.index(label_column)
  values = np.empty((len(rows) - 1, len(names) - 1), np.float64)
  cells, lines = [], []
  for index, (number, row) in enumerate(rows[1:]):
    if len(row) != len(names):
      raise DataError(f"{path} line {number} has {len(row)} cells, but the"
                      f" header has {len(names)}.")
    cells.append(row[label_index].strip())
    lines.append(number)
    for column, cell in enumerate(row[:label_index] + row[label_index + 1:]):
      try:
        values[index, column] = float(cell)
      except ValueError:
        feature = column + (column >= label_index)
        raise DataError(f"{path} line {number} column {names[feature]!r}"
                        f" holds {cell!r}, not a number; features must be"
                        " numbers (encode or drop that column).") from None
  return names, values, cells, lines


def from_csv(path_or_glob: str, *, label_column: str,
             task: str = "auto", class_names=None,
             scale: float | None = None, preprocess=None,
             name: str | None = None,
             shuffle: bool = True) -> source_lib.IndexedSource:
  """CSV files with numeric features as one split: one example per row.

  The first row of each file is a header; every column other than
  `label_column` is a feature, in file order, giving float32 features of
  shape [num_columns]. A glob reads several files (same header)
  concatenated in sorted order. Features are not rescaled (unless `scale`
  is given); `standardization` holds their mean and variance, for a
  model's normalization layer.

  What the labels mean (`task`, see `datasets.labels`): text labels
  (setosa, versicolor, ...; yes/no) are classes, the sorted names
  (`class_names`, as Keras's utilities order them) with label = index;
  numbers with fractions are float32 regression targets; whole numbers
  are int32 class indices when clearly classes (two values, or at most 20
  distinct values in at least twice as many rows), and otherwise a
  DataError asks for
  `task="regression"` or `task="classification"`.

  Args:
    path_or_glob: A `.csv` file or a glob pattern of them.
    label_column: Name of the label's column.
    task: "auto", "classification" or "regression".
    class_names: For eval data: the training data's `class_names`, so that
      text labels get the same indices.
    scale: Optional factor for the features.
    preprocess: As in `from_arrays`.
    name: Name for logs; default the file name.
    shuffle: Whether training epochs are shuffled.

  Returns:
    An indexable Source.

  Raises:
    DataError: Naming the file, line and column of a bad cell, a missing
      label column, files without rows, or labels whose task is in doubt.
  """
  if not label_column:
    raise DataError(f"reading {path_or_glob} needs {argument('label_column')},"
                    " the name of the label's column.")
  paths = expand_paths(path_or_glob, "CSV")
  labels_lib.check_task(task)
  header, tables, cells, places = None, [], [], []
  for path in paths:
    header, values, file_cells, lines = _read_file(path, label_column,
                                                   header)
    tables.append(values)
    cells += file_cells
    places += [(path, line) for line in lines]
  features = np.concatenate(tables).astype(np.float32)
  if not len(features):
    raise DataError(f"{path_or_glob} holds a header but no rows.")
  labels, task, class_names = labels_lib.column_labels(
      cells, task=task, column=label_column, class_names=class_names,
      where=lambda row: "{} line {}".format(*places[row]))
  source = arrays.from_arrays(features, labels, task=task, scale=scale,
                              preprocess=preprocess,
                              name=name or os.path.basename(paths[0]),
                              shuffle=shuffle, class_names=class_names)
  source.input_format = {"kind": "csv", "label_column": label_column,
                         "feature_names": [column for column in header
                                           if column != label_column]}
  source.use_seeded_split = True  # validation_split: see datasets.splits.
  files = f" from {len(paths)} files" if len(paths) > 1 else ""
  done = ("not rescaled" if scale in (None, 1.0) else
          f"scaled by {source_lib.format_scale(scale)}")
  if task == "regression":
    kind = "regression targets"
  elif class_names:
    kind = (f"{source.num_classes} classes:"
            f" {labels_lib.format_names(class_names)}")
  else:
    kind = f"{source.num_classes} classes"
  source.description = (
      f"{source_lib.format_count(len(labels))} rows{files},"
      f" {features.shape[1]} float features ({done}), label column"
      f" {label_column!r} ({kind})")
  return source
