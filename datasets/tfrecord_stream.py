"""`TFRecordSource`: streaming TFRecord files with stateless per-epoch shuffles.

Reading follows tf.data's FILE auto-shard policy, done explicitly because
`distribute_datasets_from_function` leaves sharding to the dataset function:
input pipeline `p` of `P` reads files `p, p + P, ...` when there are at least
`P` files, and every `P`-th record (the DATA policy) when there are fewer.
Per pipeline: interleave -> parse (parallel) -> optional cache -> per-epoch
shuffle -> preprocess (parallel) -> batch -> prefetch. The shuffle is
stateless: the file order, then blocks of `shuffle_buffer` consecutive
records, are permuted by seeds of (seed, epoch, p); with `cache` the file
order stays fixed. Batches span epochs. The stream is a pure function of
(seed, P, p), so a restart at step `s` starts at epoch `s * L * B // n_p`
(`L` local replicas, `B` per-replica batch, `n_p` examples of the pipeline)
and skips only the rest of that epoch: exact resume. Unlike indexable
sources, which examples form a step depends on the number of input
pipelines (the sharding): 1 and N workers see the same data in a different
order.
"""

import math

import numpy as np
import tensorflow as tf

from datasets import pipeline
from datasets import source as source_lib
from datasets.errors import DataError

# Salt words of the per-epoch seeds, so they differ from other seeded uses.
_FILE_SALT, _RECORD_SALT, _AUGMENT_SALT = 0xF11E, 0x5EC0, 0xA06
_EVAL_AUGMENT_SALT = 0xE7A1


def pipeline_examples(counts: list[int], pipeline_id: int,
                      num_pipelines: int) -> int:
  """Examples that input pipeline `pipeline_id` of `num_pipelines` reads."""
  if len(counts) >= num_pipelines:
    return sum(counts[pipeline_id::num_pipelines])
  return len(range(pipeline_id, sum(counts), num_pipelines))


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


class TFRecordSource(source_lib.Source):
  """TFRecord files of one split, parsed per example; not indexable."""

  def __init__(self, *, name: str, paths: list[str], counts: list[int],
               parse, input_shape=None, num_classes=None,
               infer_input_shape: bool = False,
               description: str = "", feature_scale: float = 1.0,
               preprocess=None, shuffle: bool = True, cache: bool = False,
               shuffle_buffer: int = 10_000):
    if len(paths) != len(counts) or not sum(counts):
      raise DataError(f"{name} holds no records.")
    self.name, self.paths, self.counts = name, list(paths), list(counts)
    self.parse = parse
    self.num_examples = sum(counts)
    self.input_shape, self.num_classes = input_shape, num_classes
    self._infer_input_shape = infer_input_shape
    self.description = description
    self.feature_scale = feature_scale
    self.preprocess = preprocess
    self.takes_seed = (preprocess is not None
                       and source_lib.preprocess_takes_seed(preprocess))
    self.shuffle, self.cache = shuffle, cache
    self.shuffle_buffer = shuffle_buffer

  @property
  def input_shape(self):
    """The features' shape; a user's `parse_fn` is traced on first use.

    Not while the run is planned: tracing a function starts TensorFlow's
    runtime, which must wait for the strategy and the device settings.
    """
    if self._infer_input_shape:
      spec = tf.data.TFRecordDataset(self.paths[:1]).map(
          self.parse).element_spec[0]
      self._input_shape = tf.nest.map_structure(
          lambda s: tuple(s.shape) if s.shape.is_fully_defined() else None,
          spec)
      self._infer_input_shape = False
    return self._input_shape

  @input_shape.setter
  def input_shape(self, value) -> None:
    self._input_shape = value
    self._infer_input_shape = False

  def records(self, pipeline_id: int, num_pipelines: int,
              file_seed=None) -> tf.data.Dataset:
    """This pipeline's parsed examples, one pass.

    At least as many files as pipelines: this pipeline's files (FILE
    policy); fewer: every `num_pipelines`-th record of all files (DATA).
    `file_seed` shuffles the file order first (the same on every pipeline).
    """
    paths = self.paths
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
    return records.map(self.parse, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True)

  def _preprocessed(self, records, first_position, salt_word, pipeline_id,
                    num_pipelines):
    """Applies `preprocess` with seeds of (salt, stream position, pipeline)."""
    if self.preprocess is None:
      return records

    def apply(position, example):
      seed = pipeline.augment_seeds(
          salt_word, position * num_pipelines + pipeline_id)
      return tuple(source_lib.apply_preprocess(
          self.preprocess, self.takes_seed, *example, seed))

    return records.enumerate(first_position).map(
        lambda position, example: apply(position, example),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def train_dataset_fn(self, *, global_batch_size: int, seed: int,
                       start_step: int = 0):
    """Infinite per-replica batches; exact resume for a fixed sharding."""

    def dataset_fn(input_context=None):
      layout = pipeline.replica_layout(input_context, global_batch_size)
      pipeline_id, num_pipelines = pipeline.input_pipeline(input_context)
      count = pipeline_examples(self.counts, pipeline_id, num_pipelines)
      if layout.batch_size > count:
        raise DataError(f"the per-replica batch ({layout.batch_size}) is"
                        f" larger than input pipeline {pipeline_id}'s"
                        f" {count} training examples of {self.name}.")
      cached = (self.records(pipeline_id, num_pipelines).cache()
                if self.cache else None)

      def epoch(index):
        if cached is not None:
          records = cached
        else:
          file_seed = (_epoch_seed(seed, index, _FILE_SALT) if self.shuffle
                       else None)
          records = self.records(pipeline_id, num_pipelines, file_seed)
        if self.shuffle:
          records = _block_shuffle(
              records, self.shuffle_buffer,
              _epoch_seed(seed, index, _RECORD_SALT, pipeline_id))
        return records

      position = start_step * layout.local_replicas * layout.batch_size
      first_epoch, offset = divmod(position, count)
      dataset = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch)
      dataset = self._preprocessed(
          dataset, first_epoch * count, seed * 65_537 + _AUGMENT_SALT,
          pipeline_id, num_pipelines)
      dataset = dataset.skip(offset).batch(layout.batch_size,
                                           drop_remainder=True)
      return pipeline.endless(dataset.prefetch(tf.data.AUTOTUNE).with_options(
          pipeline.pipeline_options()))

    return dataset_fn

  def eval_steps(self, global_batch_size: int, num_pipelines: int) -> int:
    """Steps that cover every pipeline's examples once."""
    per_step = global_batch_size // num_pipelines
    return max(math.ceil(pipeline_examples(self.counts, p, num_pipelines)
                         / per_step) for p in range(num_pipelines))

  def eval_dataset_fn(self, *, global_batch_size: int,
                      num_input_pipelines: int = 1, padded: bool = True):
    """Every record once: padded with weights, or spread unpadded.

    Padded: each pipeline's examples (weight 1) are followed by copies of
    its first example with weight 0, to `steps` full steps. Unpadded: each
    pipeline spreads its examples over its `steps * L` slots as evenly as
    possible (floor/ceil sizes, none empty).
    """
    steps = self.eval_steps(global_batch_size, num_input_pipelines)

    def dataset_fn(input_context=None):
      layout = pipeline.replica_layout(input_context, global_batch_size)
      pipeline_id, num_pipelines = pipeline.input_pipeline(input_context)
      count = pipeline_examples(self.counts, pipeline_id, num_pipelines)
      records = self._preprocessed(
          self.records(pipeline_id, num_pipelines), 0, _EVAL_AUGMENT_SALT,
          pipeline_id, num_pipelines)
      real = records.map(lambda *example: (example, True))
      filler = records.take(1).map(lambda *example: (example, False)).repeat()
      slots = steps * layout.local_replicas
      if padded:
        dataset = real.concatenate(filler).take(slots * layout.batch_size)
        dataset = dataset.batch(layout.batch_size, drop_remainder=True).map(
            lambda example, valid: (*example, tf.cast(valid, tf.float32)))
      else:
        dataset = self._spread(real, filler, count, slots, pipeline_id)
      return dataset.prefetch(tf.data.AUTOTUNE).with_options(
          pipeline.pipeline_options())

    return dataset_fn, steps

  def _spread(self, real, filler, count: int, slots: int, pipeline_id: int):
    """`count` examples over `slots` batches of floor/ceil sizes."""
    if count < slots:
      raise DataError(
          f"input pipeline {pipeline_id} has {count} eval examples of"
          f" {self.name}, too few for one per replica in each of the"
          f" {slots} (replica, step) slots; use a larger global batch size.")
    bounds = np.arange(slots + 1, dtype=np.int64) * count // slots
    sizes = np.diff(bounds)
    width = int(sizes.max())
    # Per slot: its examples (choice 0), then filler rows (1) to `width`.
    choices = (np.arange(width)[None, :] >= sizes[:, None]).astype(np.int64)
    dataset = tf.data.Dataset.choose_from_datasets(
        [real, filler], tf.data.Dataset.from_tensor_slices(choices.ravel()))
    return dataset.batch(width, drop_remainder=True).map(
        lambda example, valid: tf.nest.map_structure(
            lambda t: tf.boolean_mask(t, valid), example))
