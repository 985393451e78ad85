"""The directory format of the built-in dataset `tfrecord`.

Written by `python -m launch.write_tfrecords`.

Layout of a directory written by `write_dataset` (`python -m
launch.write_tfrecords`):

  dataset.json                      shapes, dtypes, classes, per-file counts
  train-00000-of-00004.tfrecord ... `tf.train.Example`s: "features" (the raw
  eval-00000-of-00001.tfrecord      bytes of one example), "label"

`dataset.json` is written last, so a directory with it is complete.

Reading: `load_sources(directory)` gives the train and eval splits as
`datasets.tfrecord_stream.TFRecordSource`s (see there for sharding and
exact resume), the schema and counts taken from `dataset.json`.
"""

from collections.abc import Callable, Iterator
import dataclasses
import json
import os

import numpy as np

from datasets.errors import DataError, argument

METADATA = "dataset.json"
SPLITS = ("train", "eval")


@dataclasses.dataclass(frozen=True)
class TFRecordDirectory:
  """A TFRecord directory, described by its `dataset.json`."""

  name: str
  directory: str
  input_shape: tuple[int, ...]
  feature_dtype: str
  label_dtype: str
  num_classes: int
  feature_scale: float
  files: dict  # split -> [(file name, number of examples)].

  def num_examples(self, split: str) -> int:
    return sum(count for _, count in self.files[split])

  @property
  def num_train_examples(self) -> int:
    return self.num_examples("train")

  @property
  def num_eval_examples(self) -> int:
    return self.num_examples("eval")

  def paths(self, split: str) -> list[str]:
    return [os.path.join(self.directory, name) for name, _ in self.files[split]]

  def pipeline_examples(self, split: str, pipeline: int,
                        num_pipelines: int) -> int:
    """Examples that input pipeline `pipeline` of `num_pipelines` reads."""
    counts = [count for _, count in self.files[split]]
    if len(counts) >= num_pipelines:
      return sum(counts[pipeline::num_pipelines])
    return len(range(pipeline, sum(counts), num_pipelines))


def _shard_name(split: str, index: int, count: int) -> str:
  return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


@dataclasses.dataclass(frozen=True)
class Rows:
  """One split given in chunks, so that it need not fit in memory.

  Attributes:
    num_rows: Rows in all chunks.
    feature_shape: Shape of one example's features.
    feature_dtype: Their dtype (kept as raw bytes in the records).
    label_is_float: Float labels (regression) rather than class indices.
    chunks: Called once; yields (features [n, ...], labels [n]) in order.
  """

  num_rows: int
  feature_shape: tuple
  feature_dtype: np.dtype
  label_is_float: bool
  chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


def array_rows(features: np.ndarray, labels: np.ndarray,
               chunk: int = 4096) -> Rows:
  """Arrays (or memory maps) as `Rows`, read `chunk` rows at a time."""
  if len(features) != len(labels) or not len(labels):
    raise DataError(f"{len(features)} feature rows and {len(labels)} labels;"
                    " they must match and not be empty.")
  return Rows(len(labels), tuple(features.shape[1:]), features.dtype,
              bool(np.issubdtype(labels.dtype, np.floating)),
              lambda: ((features[start:start + chunk],
                        labels[start:start + chunk])
                       for start in range(0, len(labels), chunk)))


def _example(features: np.ndarray, label, is_float: bool) -> bytes:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  label = (tf.train.Feature(float_list=tf.train.FloatList(value=[float(label)]))
           if is_float else
           tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])))
  return tf.train.Example(features=tf.train.Features(feature={
      "features": tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[np.ascontiguousarray(features).tobytes()])),
      "label": label})).SerializeToString()


def _write_split(directory: str, split: str, rows: Rows, count: int):
  """Writes the shards of one split; returns [(name, records, largest)]."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  base, extra = divmod(rows.num_rows, count)
  sizes = [base + (index < extra) for index in range(count)]
  written, shard, writer, left, largest, seen = [], -1, None, 0, -1, 0

  def close():
    writer.close()
    name = _shard_name(split, shard, count)
    os.replace(os.path.join(directory, f".{name}.partial"),
               os.path.join(directory, name))
    written.append((name, sizes[shard], largest))

  for features, labels in rows.chunks():
    if tuple(features.shape[1:]) != rows.feature_shape:
      raise DataError(f"the {split} features change shape from"
                      f" {rows.feature_shape} to {tuple(features.shape[1:])}.")
    for row, label in zip(features, labels):
      if not left:
        if writer is not None:
          close()
        shard, left, largest = shard + 1, sizes[shard + 1], -1
        writer = tf.io.TFRecordWriter(os.path.join(
            directory, f".{_shard_name(split, shard, count)}.partial"))
      writer.write(_example(row, label, rows.label_is_float))
      if not rows.label_is_float:
        largest = max(largest, int(label))
      left, seen = left - 1, seen + 1
  if seen != rows.num_rows:
    raise DataError(f"the {split} split gave {seen} rows, not the"
                    f" {rows.num_rows} announced.")
  close()
  return written


def write_dataset(directory: str, splits: dict, *, num_shards: dict,
                  num_classes: int | None = None,
                  feature_scale: float = 1.0,
                  class_names=None) -> TFRecordDirectory:
  """Writes `{split: rows}` as sharded TFRecord files, streaming.

  Besides `dataset.json` it writes `record_counts.json` (records and the
  largest label per file), so that the files read with `from_tfrecords`
  start without counting them.

  Args:
    directory: Created if needed; must not already hold a dataset.
    splits: "train" and "eval" -> `Rows`, or (features [N, ...], labels
      [N]) arrays (memory maps are read a chunk at a time).
    num_shards: Files per split (at most one per example).
    num_classes: Default: 1 + the largest integer label (1 for floats).
    feature_scale: Recorded for the reader (e.g. 1/255 for uint8 pixels).
    class_names: Names of the classes 0, 1, ..., if known (recorded).

  Returns:
    The written dataset's source.

  Raises:
    DataError: If the splits do not fit together or the directory is taken.
  """
  from datasets import tfrecord_files  # pylint: disable=import-outside-toplevel
  if os.path.exists(os.path.join(directory, METADATA)):
    raise DataError(f"{directory} already holds a dataset; remove it or"
                    " choose another directory.")
  splits = {split: rows if isinstance(rows, Rows) else array_rows(*rows)
            for split, rows in splits.items()}
  first = splits["train"]
  for split, rows in splits.items():
    if (rows.feature_shape != first.feature_shape
        or rows.feature_dtype != first.feature_dtype):
      raise DataError(f"the {split} features are {rows.feature_dtype}"
                      f"{rows.feature_shape}, the train features"
                      f" {first.feature_dtype}{first.feature_shape}.")
    if not 1 <= num_shards[split] <= rows.num_rows:
      raise DataError(f"{num_shards[split]} {split} shards for"
                      f" {rows.num_rows} examples; use 1 to the number of"
                      " examples.")
  os.makedirs(directory, exist_ok=True)
  files, book, largest = {}, {}, -1
  for split, rows in splits.items():
    files[split] = []
    for name, count, top in _write_split(directory, split, rows,
                                         num_shards[split]):
      files[split].append([name, count])
      book[name] = tfrecord_files.entry_for(
          os.path.join(directory, name), count,
          None if first.label_is_float else {"label": top})
      largest = max(largest, top)
  tfrecord_files.write_counts_book(directory, book)
  if num_classes is None:
    num_classes = 1 if first.label_is_float else largest + 1
  metadata = {"feature_shape": list(first.feature_shape),
              "feature_dtype": np.dtype(first.feature_dtype).name,
              "label_dtype": "float32" if first.label_is_float else "int64",
              "num_classes": num_classes, "feature_scale": feature_scale,
              "files": files}
  if class_names is not None:
    metadata["class_names"] = [str(name) for name in class_names]
  staging = os.path.join(directory, f".{METADATA}.partial")
  with open(staging, "w", encoding="utf-8") as stream:
    json.dump(metadata, stream, indent=2)
  os.replace(staging, os.path.join(directory, METADATA))
  return load(directory)


def load(directory: str | None) -> TFRecordDirectory:
  """Describes the dataset in `directory` from its `dataset.json`.

  Raises:
    DataError: If the directory holds no complete dataset.
  """
  if not directory:
    raise DataError(f"the tfrecord dataset needs {argument('data_dir')}, a"
                    " directory written by python -m launch.write_tfrecords.")
  path = os.path.join(directory, METADATA)
  try:
    with open(path, encoding="utf-8") as stream:
      meta = json.load(stream)
    source = TFRecordDirectory(
        name="tfrecord", directory=directory,
        input_shape=tuple(int(n) for n in meta["feature_shape"]),
        feature_dtype=str(np.dtype(meta["feature_dtype"])),
        label_dtype=meta["label_dtype"], num_classes=int(meta["num_classes"]),
        feature_scale=float(meta["feature_scale"]),
        files={split: [(str(name), int(count))
                       for name, count in meta["files"][split]]
               for split in SPLITS})
  except FileNotFoundError:
    raise DataError(f"{directory} holds no {METADATA}; write it with python -m"
                    " launch.write_tfrecords.") from None
  except (OSError, ValueError, KeyError, TypeError) as error:
    raise DataError(f"{path} is unreadable ({type(error).__name__}:"
                    f" {error}).") from None
  for split in SPLITS:
    missing = [p for p in source.paths(split) if not os.path.isfile(p)]
    if missing or not source.files[split]:
      raise DataError(f"{directory}: the {split} files are missing"
                      f" ({', '.join(missing) or 'none listed'}).")
  return source


def _parser(directory: TFRecordDirectory):
  """parse(record) -> (float32 features, int32 or float32 label)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  is_float = directory.label_dtype == "float32"
  spec = {"features": tf.io.FixedLenFeature([], tf.string),
          "label": tf.io.FixedLenFeature(
              [], tf.float32 if is_float else tf.int64)}

  def parse(record):
    example = tf.io.parse_single_example(record, spec)
    features = tf.io.decode_raw(example["features"],
                                tf.as_dtype(directory.feature_dtype))
    features = tf.cast(tf.reshape(features, directory.input_shape),
                       tf.float32)
    if directory.feature_scale != 1.0:
      features = features * directory.feature_scale
    return features, tf.cast(example["label"],
                             tf.float32 if is_float else tf.int32)

  return parse


def split_source(directory: TFRecordDirectory, split: str, *,
                 preprocess=None, shuffle: bool = True, cache: bool = False,
                 shuffle_buffer: int = 10_000):
  """One split of a written directory as a streaming Source."""
  from datasets import source as source_lib  # pylint: disable=import-outside-toplevel
  from datasets import tfrecord_stream  # pylint: disable=import-outside-toplevel
  count = directory.num_examples(split)
  scale = directory.feature_scale
  done = ("not rescaled" if scale == 1.0 else
          f"scaled by {source_lib.format_scale(scale)}")
  return tfrecord_stream.TFRecordSource(
      name=f"tfrecord {split}", paths=directory.paths(split),
      counts=[n for _, n in directory.files[split]],
      parse=_parser(directory), input_shape=directory.input_shape,
      num_classes=directory.num_classes,
      description=(
          f"{source_lib.format_count(count)} TFRecord examples of"
          f" {source_lib.format_shape(directory.input_shape)}"
          f" {directory.feature_dtype} features {done},"
          f" {directory.num_classes} classes"),
      feature_scale=scale, preprocess=preprocess, shuffle=shuffle,
      cache=cache, shuffle_buffer=shuffle_buffer)


def load_sources(directory: str | None, **options):
  """(train, eval) Sources of a directory written by `write_dataset`.

  Args:
    directory: The directory holding `dataset.json`.
    **options: `preprocess`, `shuffle`, `cache`, `shuffle_buffer` as in
      `datasets.from_tfrecords`.

  Raises:
    DataError: If the directory holds no complete dataset.
  """
  described = load(directory)
  return tuple(split_source(described, split, **options) for split in SPLITS)
