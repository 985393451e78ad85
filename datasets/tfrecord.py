"""Sharded TFRecord files for data that does not fit in memory.

Layout of a directory written by `write_dataset` (`python -m
launch.write_tfrecords`):

  dataset.json                      shapes, dtypes, classes, per-file counts
  train-00000-of-00004.tfrecord ... `tf.train.Example`s: "features" (the raw
  eval-00000-of-00001.tfrecord      bytes of one example), "label"

`dataset.json` is written last, so a directory with it is complete.

Reading (`create_train_dataset_fn`) follows tf.data's FILE auto-shard policy,
done explicitly because `distribute_datasets_from_function` leaves sharding
to the dataset function: input pipeline `p` of `P` reads files `p, p + P, ...`
when there are at least `P` files, and every `P`-th record (the DATA policy)
when there are fewer. Per pipeline: interleave -> parse (parallel) ->
optional cache -> per-epoch shuffle -> batch -> prefetch. The shuffle is
stateless: the file order, then blocks of `shuffle_buffer` consecutive
records, are permuted by seeds of (seed, epoch, p); with `cache` the file
order stays fixed. Batches span epochs. The stream is a pure function of (seed, P,
p), so a restart at step `s` starts at epoch `s * L * B // n_p` (`L` local
replicas, `B` per-replica batch, `n_p` examples of the pipeline) and skips
only the rest of that epoch: exact resume. Unlike the in-memory pipeline,
which examples form a step depends on the number of input pipelines (the
sharding), so 1 and N workers see the same data in a different order.
"""

import dataclasses
import json
import os

import numpy as np

from datasets.sources import DataError

METADATA = "dataset.json"
SPLITS = ("train", "eval")


@dataclasses.dataclass(frozen=True)
class TFRecordSource:
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
                  feature_scale: float = 1.0) -> TFRecordSource:
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
                    " choose another --output_dir.")
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


def load(directory: str | None) -> TFRecordSource:
  """Describes the dataset in `directory` from its `dataset.json`.

  Raises:
    DataError: If the directory holds no complete dataset.
  """
  if not directory:
    raise DataError("--dataset=tfrecord needs --data_dir, a directory written"
                    " by python -m launch.write_tfrecords.")
  path = os.path.join(directory, METADATA)
  try:
    with open(path, encoding="utf-8") as stream:
      meta = json.load(stream)
    source = TFRecordSource(
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
