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


def write_dataset(directory: str, splits: dict, *, num_shards: dict,
                  num_classes: int | None = None,
                  feature_scale: float = 1.0) -> TFRecordDirectory:
  """Writes `{split: (features, labels)}` as sharded TFRecord files.

  Args:
    directory: Created if needed; must not already hold a dataset.
    splits: "train" and "eval" -> (features [N, ...], labels [N]).
    num_shards: Files per split (at most one per example).
    num_classes: Default: 1 + the largest integer label (1 for floats).
    feature_scale: Recorded for the reader (e.g. 1/255 for uint8 pixels).

  Returns:
    The written dataset's source.

  Raises:
    DataError: If the arrays do not fit together or the directory is taken.
  """
  import tensorflow as tf  # Writing needs TensorFlow; describing does not.
  if os.path.exists(os.path.join(directory, METADATA)):
    raise DataError(f"{directory} already holds a dataset; remove it or"
                    " choose another directory.")
  features, labels = splits["train"]
  shape, dtype = tuple(features.shape[1:]), features.dtype
  label_type = "float32" if np.issubdtype(labels.dtype, np.floating) else "int64"
  for split, (x, y) in splits.items():
    if len(x) != len(y) or not len(y):
      raise DataError(f"the {split} split has {len(x)} feature rows and"
                      f" {len(y)} labels; they must match and not be empty.")
    if tuple(x.shape[1:]) != shape or x.dtype != dtype:
      raise DataError(f"the {split} features are {x.dtype}{x.shape[1:]}, the"
                      f" train features {dtype}{shape}.")
    if not 1 <= num_shards[split] <= len(y):
      raise DataError(f"{num_shards[split]} {split} shards for {len(y)}"
                      " examples; use 1 to the number of examples.")
  os.makedirs(directory, exist_ok=True)
  files = {}
  for split, (x, y) in splits.items():
    count = num_shards[split]
    files[split] = []
    for index, rows in enumerate(np.array_split(np.arange(len(y)), count)):
      name = _shard_name(split, index, count)
      staging = os.path.join(directory, f".{name}.partial")
      with tf.io.TFRecordWriter(staging) as writer:
        for row in rows:
          label = (tf.train.Feature(float_list=tf.train.FloatList(
              value=[float(y[row])])) if label_type == "float32" else
                   tf.train.Feature(int64_list=tf.train.Int64List(
                       value=[int(y[row])])))
          example = tf.train.Example(features=tf.train.Features(feature={
              "features": tf.train.Feature(bytes_list=tf.train.BytesList(
                  value=[np.ascontiguousarray(x[row]).tobytes()])),
              "label": label}))
          writer.write(example.SerializeToString())
      os.replace(staging, os.path.join(directory, name))
      files[split].append([name, len(rows)])
  if num_classes is None:
    num_classes = (1 if label_type == "float32" else int(max(
        splits["train"][1].max(), splits["eval"][1].max())) + 1)
  metadata = {"feature_shape": list(shape), "feature_dtype": dtype.name,
              "label_dtype": label_type, "num_classes": num_classes,
              "feature_scale": feature_scale, "files": files}
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
