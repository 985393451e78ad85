"""`tf.data` pipelines whose data position is a pure function of the step.

The distributed iterator of `tf.distribute` cannot be checkpointed, so the
training pipeline is built from indices instead of from a stateful shuffle:

  range(first element) -> [per-replica batch of global example ids]
    -> per-epoch `index_shuffle(seed, epoch)` -> parallel map (gather from
    the cached float32 split) -> prefetch(AUTOTUNE)

The stream of example ids is global: step `s` consumes ids
`[s * G, (s + 1) * G)` where `G` is the global batch, and id `i` is example
`shuffle(i mod N; seed, epoch=i div N)`. Replica `r` of `R` takes ids
`s * G + r * B ... + B - 1` with `B = G / R`. Hence

* each epoch visits every example exactly once, batches may span epochs;
* the examples of a global step do not depend on the number of replicas or
  workers (the property that makes 1 and N replicas train alike);
* a restart at step `s` only needs `start_step=s`: nothing is skipped by
  reading.

Sharding is explicit (input pipeline `p` of `P` serves the replicas
`p * R/P ... (p + 1) * R/P - 1`), so tf.data's auto-sharding is switched off.
The split is decoded (cast, scaled) once into float32 per input pipeline:
that is the cache.
"""

from collections.abc import Callable
import dataclasses
import math

import numpy as np
import tensorflow as tf

# Third word of every shuffle key, so the keys differ from other uses of seed.
_SHUFFLE_SALT = 0x5EED

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


def per_replica_batch_size(global_batch_size: int, num_replicas: int) -> int:
  """Returns global / replicas, or raises ValueError when it does not divide."""
  if global_batch_size <= 0 or global_batch_size % num_replicas:
    raise ValueError(
        f"the global batch size ({global_batch_size}) must be a positive"
        f" multiple of the number of replicas ({num_replicas}).")
  return global_batch_size // num_replicas


def eval_steps(num_examples: int, global_batch_size: int) -> int:
  """Steps that cover `num_examples` once; the last batch is padded."""
  return math.ceil(num_examples / global_batch_size)


@dataclasses.dataclass(frozen=True)
class _Layout:
  """Which replicas one input pipeline feeds, and with how many examples."""

  global_batch_size: int
  batch_size: int
  local_replicas: int
  first_replica: int

  def example_ids(self, element: tf.Tensor) -> tf.Tensor:
    """Global example ids [B] of the `element`-th batch of this pipeline."""
    step = element // self.local_replicas
    replica = self.first_replica + element % self.local_replicas
    start = step * self.global_batch_size + replica * self.batch_size
    return start + tf.range(self.batch_size, dtype=tf.int64)

  def batches(self, first_step: int, end_step: int, load_batch):
    """Per-replica batches of the steps in [first_step, end_step)."""
    dataset = tf.data.Dataset.range(first_step * self.local_replicas,
                                    end_step * self.local_replicas)
    dataset = dataset.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(pipeline_options())


def endless(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Declares a training stream infinite (it ends after 2**62 elements).

  Under MultiWorkerMirroredStrategy a distributed iterator over a dataset
  that may end all-reduces, at EVERY step, whether each worker still has
  data (partial-batch handling); an infinite one skips that collective.
  """
  return dataset.apply(tf.data.experimental.assert_cardinality(
      tf.data.INFINITE_CARDINALITY))


def replica_layout(input_context: tf.distribute.InputContext | None,
            global_batch_size: int) -> _Layout:
  if input_context is None:
    input_context = tf.distribute.InputContext()
  num_replicas = input_context.num_replicas_in_sync
  batch_size = per_replica_batch_size(global_batch_size, num_replicas)
  if num_replicas % input_context.num_input_pipelines:
    raise ValueError(
        f"{num_replicas} replicas cannot be split evenly over"
        f" {input_context.num_input_pipelines} input pipelines.")
  local_replicas = num_replicas // input_context.num_input_pipelines
  return _Layout(global_batch_size, batch_size, local_replicas,
                 input_context.input_pipeline_id * local_replicas)


def _shuffled_positions(example_ids: tf.Tensor, *, num_examples: int,
                        seed: int) -> tf.Tensor:
  """Maps global ids to array rows through a seeded per-epoch permutation.

  Each id carries its own (seed, epoch) key, so a batch that spans the end
  of an epoch takes its rows from two permutations.
  """
  epochs = example_ids // num_examples
  keys = tf.stack([tf.fill(tf.shape(epochs), tf.constant(seed, tf.int64)),
                   epochs, tf.fill(tf.shape(epochs), tf.constant(_SHUFFLE_SALT, tf.int64))],
                  axis=1)
  # The raw op: the tf.random.experimental wrapper mis-pads per-index seeds.
  return tf.raw_ops.RandomIndexShuffle(
      index=example_ids % num_examples, seed=keys,
      max_index=tf.constant(num_examples - 1, tf.int64), rounds=4)


def pipeline_options() -> tf.data.Options:
  options = tf.data.Options()
  # Sharding is done by index arithmetic; auto-sharding would drop data.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.OFF)
  options.deterministic = True
  return options


def _cached_features(features, feature_scale: float):
  """The whole split decoded once to scaled float32: the pipeline's cache.

  Casting and scaling per batch cost a quarter of an MLP step on a 2-core
  CPU; doing it once costs 4 bytes per feature of memory instead of 1.
  `features` is an array or a dict of arrays (named inputs); so is the
  result.
  """

  def decode(array):
    decoded = tf.cast(tf.constant(array), tf.float32)
    return decoded * feature_scale if feature_scale != 1.0 else decoded

  return tf.nest.map_structure(decode, features)


def _gather(features, rows: tf.Tensor):
  return tf.nest.map_structure(lambda t: tf.gather(t, rows), features)


def create_train_dataset_fn(features: np.ndarray, labels: np.ndarray, *,
                            global_batch_size: int, seed: int,
                            start_step: int = 0, shuffle: bool = True,
                            feature_scale: float = 1.0) -> DatasetFn:
  """Returns a `dataset_fn` for `strategy.distribute_datasets_from_function`.

  Args:
    features: Training features [N, ...] (or a dict of them, one per named
      input); kept in memory.
    labels: Integer labels [N].
    global_batch_size: Examples per step over all replicas.
    seed: Shuffle seed; the order of epoch `e` depends only on (seed, e).
    start_step: The first step the iterator serves (exact resume).
    shuffle: If False, every epoch reads the arrays in order.
    feature_scale: Factor applied to the float32 features.

  Returns:
    A function from `tf.distribute.InputContext` (or None for one device) to
    an infinite dataset of per-replica `(features, labels)` batches.

  Raises:
    ValueError: If the batch does not divide, or one replica's batch is
      larger than the dataset.
  """
  num_examples = len(tf.nest.flatten(labels)[0])

  def dataset_fn(input_context=None):
    layout = replica_layout(input_context, global_batch_size)
    if layout.batch_size > num_examples:
      raise ValueError(
          f"the per-replica batch ({layout.batch_size}) is larger than the"
          f" {num_examples} training examples.")
    all_features = _cached_features(features, feature_scale)
    all_labels = tf.nest.map_structure(tf.constant, labels)

    def load_batch(element):
      ids = layout.example_ids(element)
      rows = (_shuffled_positions(ids, num_examples=num_examples, seed=seed)
              if shuffle else ids % num_examples)
      return _gather(all_features, rows), _gather(all_labels, rows)

    # Ends after 2**62 / local replicas steps, i.e. never.
    return endless(layout.batches(start_step, 2**62 // layout.local_replicas,
                                  load_batch))

  return dataset_fn


def create_eval_dataset_fn(features: np.ndarray, labels: np.ndarray, *,
                           global_batch_size: int,
                           feature_scale: float = 1.0) -> DatasetFn:
  """Returns a `dataset_fn` that covers the eval split exactly once.

  The split is generally not divisible by the global batch, so it is padded
  to `eval_steps(...)` full steps; padded rows repeat the last example and
  carry sample weight 0, real rows weight 1. Every replica receives a full
  (static-shape) batch on every step, even when all its rows are padding.

  Args:
    features: Eval features [M, ...] (or a dict of them).
    labels: Integer labels [M].
    global_batch_size: Examples per step over all replicas.
    feature_scale: Factor applied to the float32 features.

  Returns:
    A function from `tf.distribute.InputContext` to a finite dataset of
    per-replica `(features, labels, sample_weight)` batches.
  """
  num_examples = len(tf.nest.flatten(labels)[0])
  num_steps = eval_steps(num_examples, global_batch_size)

  def dataset_fn(input_context=None):
    layout = replica_layout(input_context, global_batch_size)
    all_features = _cached_features(features, feature_scale)
    all_labels = tf.nest.map_structure(tf.constant, labels)

    def load_batch(element):
      ids = layout.example_ids(element)
      rows = tf.minimum(ids, num_examples - 1)
      weights = tf.cast(ids < num_examples, tf.float32)
      return (_gather(all_features, rows), _gather(all_labels, rows),
              weights)

    return layout.batches(0, num_steps, load_batch)

  return dataset_fn
