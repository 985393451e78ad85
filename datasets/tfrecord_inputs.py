"""What `python -m launch.write_tfrecords` reads, as `tfrecord.Rows` streams.

Each reader holds one chunk in memory at a time (plus the labels):

* `npz_rows`: a key pair of an `.npz` (the arrays are read from the zip
  member a chunk at a time, never loaded whole);
* `csv_rows`: CSV files as `from_csv` reads them (`datasets.csv_cache`:
  one chunked pass into a binary table in a scratch folder);
* `image_rows`: a directory of class subfolders, decoded and resized as
  `from_image_directory` does, kept as uint8 pixels (rounded).
"""

import zipfile

import numpy as np

from datasets import csv_cache
from datasets import csv_labels
from datasets import tfrecord
from datasets.errors import DataError

_CHUNK_BYTES = 1 << 24


def _member(archive: zipfile.ZipFile, path: str, key: str):
  """(open member stream, shape, dtype) of the array `key`."""
  name = f"{key}.npy"
  if name not in archive.namelist():
    raise DataError(f"{path} has no array {key!r}.")
  stream = archive.open(name)
  version = np.lib.format.read_magic(stream)
  header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
  shape, fortran_order, dtype = header(stream)
  if fortran_order or dtype.hasobject:
    raise DataError(f"{path}[{key}] is not a plain C-ordered numeric array;"
                    " save it with numpy.savez.")
  return stream, shape, dtype


def npz_rows(path: str, x_key: str, y_key: str) -> tfrecord.Rows:
  """The rows of `x_key` and `y_key` in an `.npz`, streamed.

  Raises:
    DataError: If the file or a key is missing, or the arrays differ.
  """
  try:
    with zipfile.ZipFile(path) as archive:
      stream, _, _ = _member(archive, path, y_key)
      with stream:
        labels = np.lib.format.read_array(archive.open(f"{y_key}.npy"),
                                          allow_pickle=False)
      stream, shape, dtype = _member(archive, path, x_key)
      stream.close()
  except (OSError, ValueError, zipfile.BadZipFile) as error:
    raise DataError(f"{path} is not a readable .npz"
                    f" ({type(error).__name__}).") from None
  if not shape or shape[0] != len(labels) or labels.ndim != 1:
    raise DataError(f"{path}: {x_key} has {shape[0] if shape else 0} rows"
                    f" and {y_key} {labels.shape}; give one label per row.")
  row_bytes = max(1, int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
  chunk = max(1, _CHUNK_BYTES // row_bytes)

  def chunks():
    with zipfile.ZipFile(path) as archive:
      stream, _, _ = _member(archive, path, x_key)
      with stream:
        for start in range(0, len(labels), chunk):
          count = min(chunk, len(labels) - start)
          data = stream.read(count * row_bytes)
          yield (np.frombuffer(data, dtype).reshape((count, *shape[1:])),
                 labels[start:start + count])

  return tfrecord.Rows(len(labels), tuple(shape[1:]), dtype,
                       bool(np.issubdtype(labels.dtype, np.floating)), chunks)


def csv_rows(paths: list[str], label_column: str, scratch: str, *,
             task: str = "auto", class_names=None):
  """(Rows, class_names) of CSV files, read once into `scratch`.

  Raises:
    DataError: As `from_csv` (file, line and column of a bad cell).
  """
  from datasets import csv_parse, csv_source  # pylint: disable=import-outside-toplevel
  table = csv_cache.build_table(paths, label_column, cache_dir=scratch)
  if not table.num_rows:
    raise DataError(f"{', '.join(paths)} hold a header but no rows.")
  labels, task, class_names = csv_labels.table_labels(
      table, task=task, column=label_column, class_names=class_names,
      where=csv_source.where_function(paths, table))
  labels = labels.astype(np.float32 if task == "regression" else np.int64)
  reader = csv_source.FeatureReader(table)
  chunk = csv_parse.chunk_rows(table.num_columns)

  def chunks():
    for start in range(0, table.num_rows, chunk):
      rows = np.arange(start, min(start + chunk, table.num_rows))
      yield reader.read(rows), labels[rows]

  return (tfrecord.Rows(table.num_rows, (table.num_columns,), table.dtype,
                        task == "regression", chunks), class_names)


def image_rows(directory: str, *, image_size, channels: int,
               class_names=None):
  """(Rows, class_names) of a directory of class subfolders of images.

  Raises:
    DataError: If there are no images, a file cannot be decoded, or (eval
      data) a class folder is not a training class.
  """
  from datasets import images  # pylint: disable=import-outside-toplevel
  names, paths, labels = images.list_class_images(directory)
  if class_names is not None:
    unknown = sorted(set(names) - set(class_names))
    if unknown:
      raise DataError(f"{directory} has the class folder {unknown[0]!r},"
                      " which is not a class of the training data.")
    index = [list(class_names).index(name) for name in names]
    labels = np.array([index[label] for label in labels], np.int64)
  shape = (*image_size, channels)

  def chunks():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    for start in range(0, len(paths), 256):
      batch = []
      for path in paths[start:start + 256]:
        try:
          image = images.decode(tf.io.read_file(path), channels)
        except (tf.errors.OpError, OSError) as error:
          reason = str(getattr(error, "message", error)).splitlines()[0]
          raise DataError(f"{path} is not a readable image ({reason}).") \
              from None
        resized = tf.image.resize(image, image_size, method="bilinear")
        batch.append(np.clip(np.round(resized.numpy()), 0, 255))
      yield np.stack(batch).astype(np.uint8), labels[start:start + 256]

  return (tfrecord.Rows(len(paths), shape, np.dtype(np.uint8), False, chunks),
          list(class_names) if class_names is not None else names)
