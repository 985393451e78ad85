"""`dataset_fn`s over a `TFRecordSource` (see `datasets.tfrecord`)."""

import math

import tensorflow as tf

from datasets import pipeline
from datasets.tfrecord import TFRecordSource

# Salt words of the per-epoch seeds, so they differ from other seeded uses.
_FILE_SALT, _RECORD_SALT = 0xF11E, 0x5EC0


def _context(input_context):
  if input_context is None:
    return 0, 1
  return input_context.input_pipeline_id, input_context.num_input_pipelines


def _parser(source: TFRecordSource):
  spec = {"features": tf.io.FixedLenFeature([], tf.string),
          "label": tf.io.FixedLenFeature(
              [], tf.float32 if source.label_dtype == "float32" else tf.int64)}
  label_type = tf.float32 if source.label_dtype == "float32" else tf.int32

  def parse(record):
    example = tf.io.parse_single_example(record, spec)
    features = tf.io.decode_raw(example["features"],
                                tf.as_dtype(source.feature_dtype))
    features = tf.cast(tf.reshape(features, source.input_shape), tf.float32)
    if source.feature_scale != 1.0:
      features = features * source.feature_scale
    return features, tf.cast(example["label"], label_type)

  return parse


def _records(source: TFRecordSource, split: str, pipeline_id: int,
             num_pipelines: int, file_seed=None) -> tf.data.Dataset:
  """This pipeline's parsed examples of `split`, one pass.

  At least as many files as pipelines: this pipeline's files (FILE
  policy); fewer: every `num_pipelines`-th record of all files (DATA).
  `file_seed` shuffles the file order first (the same on every pipeline).
  """
  paths = source.paths(split)
  by_file = len(paths) >= num_pipelines
  if by_file:  # Shard before shuffling: a pipeline always reads its files.
    paths = paths[pipeline_id::num_pipelines]
  files = tf.data.Dataset.from_tensor_slices(
      paths if file_seed is None else
      tf.gather(paths, _permutation(len(paths), file_seed)))
  records = files.interleave(
      tf.data.TFRecordDataset, cycle_length=min(4, len(paths)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if not by_file:
    records = records.shard(num_pipelines, pipeline_id)
  return records.map(_parser(source), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)


def _epoch_seed(seed: int, epoch, salt: int, pipeline_id: int = 0):
  """A stateless seed [2] from (seed, epoch, salt, pipeline)."""
  return tf.stack([tf.constant(seed, tf.int64) * 65_537 + salt,
                   tf.cast(epoch, tf.int64) * 65_537 + pipeline_id])


def _permutation(size, seed) -> tf.Tensor:
  # Stateless: tf.data's shuffle(seed=tensor) fails in a traced function
  # once a global seed is set, and would depend on it.
  return tf.random.experimental.stateless_shuffle(
      tf.range(size, dtype=tf.int64), seed=seed)


def _block_shuffle(records: tf.data.Dataset, block: int,
                   seed) -> tf.data.Dataset:
  """Shuffles within consecutive blocks of `block` records, statelessly."""

  def shuffle(index, batch):
    size = tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]
    order = _permutation(size, seed + tf.stack([tf.constant(0, tf.int64),
                                                index * 1_000_003]))
    return tf.data.Dataset.from_tensor_slices(
        tf.nest.map_structure(lambda t: tf.gather(t, order), batch))

  return records.batch(block).enumerate().flat_map(shuffle)


def create_train_dataset_fn(source: TFRecordSource, *, global_batch_size: int,
                            seed: int, start_step: int = 0,
                            shuffle: bool = True, cache: bool = False,
                            shuffle_buffer: int = 10_000):
  """Returns a `dataset_fn` of infinite per-replica training batches.

  Args:
    source: The TFRecord dataset.
    global_batch_size: Examples per step over all replicas.
    seed: The order of epoch `e` depends only on (seed, e, sharding).
    start_step: First step served: exact resume.
    shuffle: Shuffle files and records each epoch.
    cache: Keep parsed records in memory after the first pass (fixes the
      file order; records are still shuffled).
    shuffle_buffer: Records shuffled together (one block).
  """

  def dataset_fn(input_context=None):
    layout = pipeline.replica_layout(input_context, global_batch_size)
    pipeline_id, num_pipelines = _context(input_context)
    count = source.pipeline_examples("train", pipeline_id, num_pipelines)
    if layout.batch_size > count:
      raise ValueError(f"the per-replica batch ({layout.batch_size}) is"
                       f" larger than input pipeline {pipeline_id}'s {count}"
                       " training examples.")
    cached = (_records(source, "train", pipeline_id, num_pipelines).cache()
              if cache else None)

    def epoch(index):
      if cached is not None:
        records = cached
      else:
        file_seed = (_epoch_seed(seed, index, _FILE_SALT) if shuffle
                     else None)
        records = _records(source, "train", pipeline_id, num_pipelines,
                           file_seed)
      if shuffle:
        records = _block_shuffle(
            records, shuffle_buffer,
            _epoch_seed(seed, index, _RECORD_SALT, pipeline_id))
      return records

    position = start_step * layout.local_replicas * layout.batch_size
    first_epoch, offset = divmod(position, count)
    dataset = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch)
    dataset = dataset.skip(offset).batch(layout.batch_size,
                                         drop_remainder=True)
    return pipeline.endless(dataset.prefetch(tf.data.AUTOTUNE).with_options(
        pipeline.pipeline_options()))

  return dataset_fn


def eval_steps(source: TFRecordSource, global_batch_size: int,
               num_pipelines: int) -> int:
  """Steps that cover every pipeline's eval examples once."""
  per_step = global_batch_size // num_pipelines
  return max(math.ceil(source.pipeline_examples("eval", p, num_pipelines)
                       / per_step) for p in range(num_pipelines))


def create_eval_dataset_fn(source: TFRecordSource, *, global_batch_size: int,
                           num_steps: int):
  """Returns a `dataset_fn` covering the eval files exactly once.

  Each pipeline's examples (weight 1) are padded with zero examples of
  weight 0 to `num_steps` full steps (`eval_steps(...)`).
  """

  def dataset_fn(input_context=None):
    layout = pipeline.replica_layout(input_context, global_batch_size)
    pipeline_id, num_pipelines = _context(input_context)
    records = _records(source, "eval", pipeline_id, num_pipelines).map(
        lambda features, label: (features, label, tf.constant(1.0)))
    label_type = tf.float32 if source.label_dtype == "float32" else tf.int32
    padding = tf.data.Dataset.from_tensors(
        (tf.zeros(source.input_shape), tf.zeros([], label_type),
         tf.constant(0.0))).repeat()
    total = num_steps * layout.local_replicas * layout.batch_size
    dataset = records.concatenate(padding).take(total).batch(
        layout.batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(
        pipeline.pipeline_options())

  return dataset_fn
