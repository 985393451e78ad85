"""`from_csv`: numeric CSV files with a header row as a `Source`."""

import glob
import os

import numpy as np

from datasets import csv_cache
from datasets import csv_columns
from datasets import csv_labels
from datasets import csv_parse
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


class FeatureReader:
  """Reads rows of a table's features (from memory or with `os.preadv`)."""

  def __init__(self, table: csv_cache.Table):
    self.features, self.path = table.features, table.path
    self.dtype, self.num_columns = table.dtype, table.num_columns
    self.row_bytes = self.num_columns * self.dtype.itemsize
    self.descriptor = None

  def read(self, rows: np.ndarray) -> np.ndarray:
    """Rows `rows` (any order, repeats allowed) as an array [len, D].

    Raises:
      OSError: If the cache file is shorter than its table says.
    """
    rows = np.asarray(rows, np.int64)
    if self.features is not None:
      return self.features[rows]
    if self.descriptor is None:
      self.descriptor = os.open(self.path, os.O_RDONLY)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    gathered = np.empty((len(rows), self.num_columns), self.dtype)
    # Consecutive rows are one read: an unshuffled batch is a single call.
    breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
    starts = np.concatenate([[0], breaks]).tolist()
    ends = np.concatenate([breaks, [len(rows)]]).tolist()
    buffer = memoryview(gathered.reshape(-1).view(np.uint8))
    for start, end in zip(starts, ends):
      want = (end - start) * self.row_bytes
      got = os.preadv(self.descriptor,
                      [buffer[start * self.row_bytes:end * self.row_bytes]],
                      int(ordered[start]) * self.row_bytes)
      if got != want:
        raise OSError(f"{self.path} is shorter than its table says.")
    result = np.empty_like(gathered)
    result[order] = gathered
    return result

  def __del__(self, close=os.close):  # `os` may be gone at exit.
    if self.descriptor is not None:
      close(self.descriptor)


class CsvData:
  """Rows of a `csv_cache.Table` (all, or a split's part): `IndexedData`.

  Features stay where the table keeps them (memory, or the cache file read
  row by row in the input pipeline); labels are in memory.
  """

  def __init__(self, table, labels, *, task, class_names, scale: float,
               preprocess=None, rows=None):
    self.table, self.labels, self.rows = table, labels, rows
    self.task, self.class_names, self.scale = task, class_names, scale
    self.preprocess = preprocess
    self.takes_seed = (preprocess is not None
                       and source_lib.preprocess_takes_seed(preprocess))
    self.num_examples = len(labels)
    self.input_shape = (table.num_columns,)
    self.num_classes = (1 if task == "regression" else
                        int(labels.max()) + 1 if len(labels) else 0)

  @property
  def features(self) -> np.ndarray:
    """All rows' features as float32 [N, D], unscaled: read into memory."""
    rows = (np.arange(self.num_examples) if self.rows is None
            else self.rows)
    return FeatureReader(self.table).read(rows).astype(np.float32)

  def take(self, rows) -> "CsvData":
    rows = np.arange(self.num_examples)[rows]
    return CsvData(self.table, self.labels[rows], task=self.task,
                   class_names=self.class_names, scale=self.scale,
                   preprocess=self.preprocess,
                   rows=rows if self.rows is None else self.rows[rows])

  def statistics(self):
    """Mean and variance of the (scaled) features: one pass at most."""
    if self.rows is None:
      mean, variance = self.table.mean, self.table.m2 / self.num_examples
    else:  # A split's part: its rows read once, in file order.
      reader = FeatureReader(self.table)
      totals = csv_columns.Statistics(self.table.num_columns)
      step = csv_parse.chunk_rows(self.table.num_columns)
      ordered = np.sort(self.rows)
      for start in range(0, len(ordered), step):
        totals.add(reader.read(ordered[start:start + step]))
      mean, variance = totals.mean, totals.m2 / self.num_examples
    return ((mean * self.scale).astype(np.float32),
            (variance * self.scale ** 2).astype(np.float32))

  def describe(self) -> str:
    return (f"{source_lib.format_count(self.num_examples)} rows of"
            f" {self.table.num_columns} float features")

  def open(self):
    """A loader gathering rows (from memory, or the cache file)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from datasets import pipeline  # pylint: disable=import-outside-toplevel
    table, scale = self.table, self.scale
    reader = FeatureReader(table)
    in_memory = (None if table.features is None
                 else tf.constant(table.features))
    file_rows = None if self.rows is None else tf.constant(self.rows,
                                                           tf.int64)
    labels = tf.constant(self.labels)

    def features(rows):
      if file_rows is not None:
        rows = tf.gather(file_rows, rows)
      if in_memory is not None:
        values = tf.gather(in_memory, rows)
      else:  # Python reads the rows; the GIL is free while it waits.
        values = tf.numpy_function(reader.read, [tf.reshape(rows, [-1])],
                                   tf.as_dtype(table.dtype), stateful=False)
        values = tf.reshape(values, tf.concat(
            [tf.shape(rows, out_type=tf.int32), [table.num_columns]], 0))
        values.set_shape(rows.shape.concatenate([table.num_columns]))
      values = tf.cast(values, tf.float32)
      return values * scale if scale != 1.0 else values

    if self.preprocess is None:
      return pipeline.Loader(load_batch=lambda rows, seeds: (
          features(rows), tf.gather(labels, rows)))
    return pipeline.Loader(load_example=lambda row, seed: tuple(
        source_lib.apply_preprocess(self.preprocess, self.takes_seed,
                                    features(row), tf.gather(labels, row),
                                    seed)))


def where_function(paths, table):
  """row -> "file line N" (the file read again, only for a message)."""
  ends = np.cumsum(table.rows_per_file)

  def where(row: int) -> str:
    index = int(np.searchsorted(ends, row, side="right"))
    local = row - (int(ends[index - 1]) if index else 0)
    return f"{paths[index]} line {csv_parse.line_of_row(paths[index], local)}"

  return where


def from_csv(path_or_glob: str, *, label_column: str,
             task: str = "auto", class_names=None,
             scale: float | None = None, preprocess=None,
             name: str | None = None, shuffle: bool = True,
             cache_dir: str | None = None) -> source_lib.IndexedSource:
  """CSV files with numeric features as one split: one example per row.

  The first row of each file is a header; every column other than
  `label_column` is a feature, in file order, giving float32 features of
  shape [num_columns]. A glob reads several files (same header)
  concatenated in sorted order. Features are not rescaled (unless `scale`
  is given); `standardization` holds their mean and variance, for a
  model's normalization layer.

  Memory does not grow with the files: they are read once, in chunks, by
  a vectorised parser (pandas), into a binary table (features in the
  narrowest exact dtype: uint8, int16 or float32) that the input pipeline
  reads row by row; the statistics come from the same pass. Files up to
  64 MB stay in memory unless `cache_dir` is given; larger ones are kept
  in `cache_dir` (default `~/.cache/harness/csv`, or $XDG_CACHE_HOME)
  and reused while the files' sizes and modification times are unchanged
  (see `datasets.csv_cache`). Labels stay in memory (4 bytes per row).

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
    cache_dir: Folder for the converted files; None: in memory when small,
      else the user's cache folder.

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
  table = csv_cache.build_table(paths, label_column, cache_dir=cache_dir)
  if not table.num_rows:
    raise DataError(f"{path_or_glob} holds a header but no rows.")
  labels, task, class_names = csv_labels.table_labels(
      table, task=task, column=label_column, class_names=class_names,
      where=where_function(paths, table))
  labels = labels.astype(np.int32 if task == "classification"
                         else np.float32)
  table = table.without_label_cells()  # 12 bytes a row less, kept for runs.
  scale = 1.0 if scale is None else float(scale)
  data = CsvData(table, labels, task=task, class_names=class_names,
                 scale=scale, preprocess=preprocess)
  source = source_lib.IndexedSource(
      data, name=name or os.path.basename(paths[0]), shuffle=shuffle,
      feature_scale=scale)
  header = table.names
  source.input_format = {"kind": "csv", "label_column": label_column,
                         "feature_names": [column for column in header
                                           if column != label_column]}
  source.use_seeded_split = True  # validation_split: see datasets.splits.
  files = f" from {len(paths)} files" if len(paths) > 1 else ""
  done = ("not rescaled" if scale == 1.0 else
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
      f" {table.num_columns} float features ({done}), label column"
      f" {label_column!r} ({kind})")
  return source
