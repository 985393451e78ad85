"""`from_csv`: numeric CSV files with a header row as a `Source`."""

import csv
import glob
import os

import numpy as np

from datasets import arrays
from datasets import source as source_lib
from datasets.errors import DataError


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
  """(header, feature rows, labels) of one file; numbers only."""
  try:
    with open(path, newline="", encoding="utf-8") as stream:
      rows = list(csv.reader(stream))
  except (OSError, UnicodeDecodeError) as error:
    raise DataError(f"{path} cannot be read ({type(error).__name__}).") from None
  rows = [(number, row) for number, row in enumerate(rows, start=1) if row]
  if not rows:
    raise DataError(f"{path} is empty; it needs a header row.")
  names = [name.strip() for name in rows[0][1]]
  if label_column not in names:
    raise DataError(f"{path} has no column {label_column!r} for label_column;"
                    f" its columns are {', '.join(names)}.")
  if header is not None and names != header:
    raise DataError(f"{path} has the columns {', '.join(names)}, unlike the"
                    " first file's; all files need the same header.")
  values = np.empty((len(rows) - 1, len(names)), np.float64)
  for index, (number, row) in enumerate(rows[1:]):
    if len(row) != len(names):
      raise DataError(f"{path} line {number} has {len(row)} cells, but the"
                      f" header has {len(names)}.")
    for column, cell in enumerate(row):
      try:
        values[index, column] = float(cell)
      except ValueError:
        raise DataError(f"{path} line {number} column {names[column]!r}"
                        f" holds {cell!r}, not a number.") from None
  return names, values


def from_csv(path_or_glob: str, *, label_column: str,
             scale: float | None = None, preprocess=None,
             name: str | None = None,
             shuffle: bool = True) -> source_lib.IndexedSource:
  """Numeric CSV files as one split: one example per row.

  The first row of each file is a header; every column other than
  `label_column` is a feature, in file order, giving float32 features of
  shape [num_columns]. A glob reads several files (same header)
  concatenated in sorted order. Labels are int32 classes if every label is
  an integer, else float32 regression targets. Features are not rescaled
  (unless `scale` is given); `standardization` holds their mean and
  variance, for a model's normalization layer.

  Args:
    path_or_glob: A `.csv` file or a glob pattern of them.
    label_column: Name of the label's column.
    scale: Optional factor for the features.
    preprocess: As in `from_arrays`.
    name: Name for logs; default the file name.
    shuffle: Whether training epochs are shuffled.

  Returns:
    An indexable Source.

  Raises:
    DataError: Naming the file, line and column of a bad cell, a missing
      label column, or files without rows.
  """
  if not label_column:
    raise DataError(f"reading {path_or_glob} needs label_column, the name of"
                    " the label's column.")
  paths = expand_paths(path_or_glob, "CSV")
  header, tables = None, []
  for path in paths:
    header, values = _read_file(path, label_column, header)
    tables.append(values)
  table = np.concatenate(tables)
  if not len(table):
    raise DataError(f"{path_or_glob} holds a header but no rows.")
  label_index = header.index(label_column)
  labels = table[:, label_index]
  if not np.all(np.isfinite(labels)):
    raise DataError(f"{path_or_glob}: column {label_column!r} holds a"
                    " missing or infinite label.")
  is_integer = np.all(labels == np.round(labels))
  labels = labels.astype(np.int64 if is_integer else np.float32)
  features = np.delete(table, label_index, axis=1).astype(np.float32)
  name = name or os.path.basename(paths[0])
  source = arrays.from_arrays(features, labels, scale=scale,
                              preprocess=preprocess, name=name,
                              shuffle=shuffle)
  source.use_seeded_split = True  # validation_split: see datasets.splits.
  files = f" from {len(paths)} files" if len(paths) > 1 else ""
  done = ("not rescaled" if scale in (None, 1.0) else
          f"scaled by {source_lib.format_scale(scale)}")
  kind = (f"{source.num_classes} classes" if is_integer
          else "float targets")
  source.description = (
      f"{source_lib.format_count(len(labels))} rows{files},"
      f" {features.shape[1]} float features ({done}), label column"
      f" {label_column!r} ({kind})")
  return source
