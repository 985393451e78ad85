"""`tf.data` pipelines over indexable data whose position is a function of the step.

The distributed iterator of `tf.distribute` cannot be checkpointed, so the
training pipeline is built from indices instead of from a stateful shuffle:

  range(first element) -> [per-replica batch of global example ids]
    -> per-epoch `index_shuffle(seed, epoch)` -> rows -> parallel load
    (a gather from the cached float32 split, or one map per example that
    reads a file or runs the user's `preprocess`) -> batch -> prefetch

The stream of example ids is global: step `s` consumes ids
`[s * G, (s + 1) * G)` where `G` is the global batch, and id `i` is example
`shuffle(i mod N; seed, epoch=i div N)`. Replica `r` of `R` takes ids
`s * G + r * B ... + B - 1` with `B = G / R`. Hence

* each epoch visits every example exactly once, batches may span epochs;
* the examples of a global step do not depend on the number of replicas or
  workers (the property that makes 1 and N replicas train alike);
* a restart at step `s` only needs `start_step=s`: nothing is skipped by
  reading.

Per-example random augmentation gets the seed `[f(seed), i]` of its global
id `i`: unique per (seed, position, epoch), so it too is exact on resume.

Sharding is explicit (input pipeline `p` of `P` serves the replicas
`p * R/P ... (p + 1) * R/P - 1`), so tf.data's auto-sharding is switched off.
"""

from collections.abc import Callable
import dataclasses
import math

import tensorflow as tf

from datasets.errors import DataError

# Third word of every shuffle key, so the keys differ from other uses of seed.
_SHUFFLE_SALT = 0x5EED
# First words of the per-example augmentation seeds (train, eval).
_AUGMENT_SALT, _EVAL_AUGMENT_SALT = 0xA06, 0xE7A1

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


@dataclasses.dataclass(frozen=True)
class Loader:
  """How one input pipeline turns rows into examples; exactly one is set.

  Attributes:
    load_batch: `(rows [k], seeds [k, 2]) -> (features, labels)` batched
      (a vectorised gather: the fast path of in-memory arrays).
    load_example: `(row [], seed [2]) -> (features, labels)` of one
      example, run in a parallel map before batching.
  """

  load_batch: Callable | None = None
  load_example: Callable | None = None


def per_replica_batch_size(global_batch_size: int, num_replicas: int) -> int:
  """Returns global / replicas, or raises DataError when it does not divide."""
  if global_batch_size <= 0 or global_batch_size % num_replicas:
    raise DataError(
        f"the global batch size ({global_batch_size}) must be a positive"
        f" multiple of the number of replicas ({num_replicas}).")
  return global_batch_size // num_replicas


def eval_steps(num_examples: int, global_batch_size: int) -> int:
  """Steps that cover `num_examples` once."""
  return math.ceil(num_examples / global_batch_size)


def augment_seeds(salt_word, ids: tf.Tensor) -> tf.Tensor:
  """Seeds [..., 2] for stateless random ops, one per id."""
  ids = tf.cast(ids, tf.int64)
  return tf.stack([tf.fill(tf.shape(ids), tf.cast(salt_word, tf.int64)), ids],
                  axis=-1)


@dataclasses.dataclass(frozen=True)
class _Layout:
  """Which replicas one input pipeline feeds, and with how many examples."""

  global_batch_size: int
  batch_size: int
  local_replicas: int
  first_replica: int
  num_replicas: int

  def example_ids(self, element: tf.Tensor) -> tf.Tensor:
    """Global example ids [B] of the `element`-th batch of this pipeline."""
    step, replica = self.step_and_replica(element)
    start = step * self.global_batch_size + replica * self.batch_size
    return start + tf.range(self.batch_size, dtype=tf.int64)

  def step_and_replica(self, element: tf.Tensor):
    return (element // self.local_replicas,
            self.first_replica + element % self.local_replicas)

  def elements(self, first_step: int, end_step: int) -> tf.data.Dataset:
    return tf.data.Dataset.range(first_step * self.local_replicas,
                                 end_step * self.local_replicas)


def endless(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """Declares a training stream infinite (it ends after 2**62 elements).

  Under MultiWorkerMirroredStrategy a distributed iterator over a dataset
  that may end all-reduces, at EVERY step, whether each worker still has
  data (partial-batch handling); an infinite one skips that collective.
  """
  return dataset.apply(tf.data.experimental.assert_cardinality(
      tf.data.INFINITE_CARDINALITY))


def input_pipeline(input_context) -> tuple[int, int]:
  """(pipeline id, number of pipelines) of an InputContext or None."""
  if input_context is None:
    return 0, 1
  return input_context.input_pipeline_id, input_context.num_input_pipelines


def replica_layout(input_context: tf.distribute.InputContext | None,
                   global_batch_size: int) -> _Layout:
  """The replicas that the pipeline of `input_context` feeds."""
  if input_context is None:
    input_context = tf.distribute.InputContext()
  num_replicas = input_context.num_replicas_in_sync
  batch_size = per_replica_batch_size(global_batch_size, num_replicas)
  if num_replicas % input_context.num_input_pipelines:
    raise DataError(
        f"{num_replicas} replicas cannot be split evenly over"
        f" {input_context.num_input_pipelines} input pipelines.")
  local_replicas = num_replicas // input_context.num_input_pipelines
  return _Layout(global_batch_size, batch_size, local_replicas,
                 input_context.input_pipeline_id * local_replicas,
                 num_replicas)


def _shuffled_positions(example_ids: tf.Tensor, *, num_examples: int,
                        seed: int) -> tf.Tensor:
  """Maps global ids to rows through a seeded per-epoch permutation.

  Each id carries its own (seed, epoch) key, so a batch that spans the end
  of an epoch takes its rows from two permutations.
  """
  epochs = example_ids // num_examples
  keys = tf.stack([tf.fill(tf.shape(epochs), tf.constant(seed, tf.int64)),
                   epochs, tf.fill(tf.shape(epochs),
                                   tf.constant(_SHUFFLE_SALT, tf.int64))],
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


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
  return dataset.prefetch(tf.data.AUTOTUNE).with_options(pipeline_options())


def _load(elements: tf.data.Dataset, loader: Loader, rows_and_seeds,
          batch_size: int) -> tf.data.Dataset:
  """Batches of examples; `rows_and_seeds(element) -> (rows, seeds, extra)`.

  `extra` ([batch] tensor) is passed through next to each batch.
  """
  if loader.load_batch is not None:

    def load_batch(element):
      rows, seeds, extra = rows_and_seeds(element)
      return (*loader.load_batch(rows, seeds), extra)

    return elements.map(load_batch, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  examples = elements.map(rows_and_seeds).unbatch()
  examples = examples.map(
      lambda row, seed, extra: (*loader.load_example(row, seed), extra),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return examples.batch(batch_size, drop_remainder=True)


def create_train_dataset_fn(num_examples: int, open_loader: Callable[[], Loader],
                            *, global_batch_size: int, seed: int,
                            start_step: int = 0,
                            shuffle: bool = True) -> DatasetFn:
  """Returns a `dataset_fn` for `strategy.distribute_datasets_from_function`.

  Args:
    num_examples: Rows of the split (N).
    open_loader: Called once per input pipeline, inside the dataset
      function (it may build the in-memory cache there).
    global_batch_size: Examples per step over all replicas.
    seed: Shuffle seed; the order of epoch `e` depends only on (seed, e).
    start_step: The first step the iterator serves (exact resume).
    shuffle: If False, every epoch reads the rows in order.

  Returns:
    A function from `tf.distribute.InputContext` (or None for one device) to
    an infinite dataset of per-replica `(features, labels)` batches.
  """
  seed_word = seed * 65_537 + _AUGMENT_SALT

  def dataset_fn(input_context=None):
    layout = replica_layout(input_context, global_batch_size)
    if layout.batch_size > num_examples:
      raise DataError(
          f"the per-replica batch ({layout.batch_size}) is larger than the"
          f" {num_examples} training examples.")
    loader = open_loader()

    def rows_and_seeds(element):
      ids = layout.example_ids(element)
      rows = (_shuffled_positions(ids, num_examples=num_examples, seed=seed)
              if shuffle else ids % num_examples)
      return rows, augment_seeds(seed_word, ids), ids

    # Ends after 2**62 / local replicas steps, i.e. never.
    elements = layout.elements(start_step, 2**62 // layout.local_replicas)
    batches = _load(elements, loader, rows_and_seeds, layout.batch_size)
    return endless(_finish(batches.map(lambda x, y, ids: (x, y))))

  return dataset_fn


def _mask(batch, valid):
  return tf.nest.map_structure(lambda t: tf.boolean_mask(t, valid), batch)


def create_eval_dataset_fn(num_examples: int,
                           open_loader: Callable[[], Loader], *,
                           global_batch_size: int,
                           padded: bool = True) -> tuple[DatasetFn, int]:
  """Returns `(dataset_fn, steps)` covering the split exactly once.

  padded: every replica receives a full static batch each step; rows past
  the end repeat the last example with sample weight 0 (real rows 1), and
  batches are `(features, labels, sample_weight)`.

  unpadded: the M examples are spread over the `steps * R` (replica, step)
  slots as evenly as possible, contiguously in slot order `step * R +
  replica`: slot sizes are floor or ceil of M / slots, none empty, and
  batches are `(features, labels)` with a dynamic batch dimension.

  Args:
    num_examples: Rows of the split (M).
    open_loader: As for `create_train_dataset_fn`.
    global_batch_size: Examples per step over all replicas.
    padded: See above.

  Returns:
    The dataset function (raising DataError, unpadded, when M is smaller
    than steps * replicas) and the number of steps, `ceil(M / G)`.
  """
  num_steps = eval_steps(num_examples, global_batch_size)

  def dataset_fn(input_context=None):
    layout = replica_layout(input_context, global_batch_size)
    loader = open_loader()
    slots = num_steps * layout.num_replicas
    if not padded and num_examples < slots:
      raise DataError(
          f"{num_examples} eval examples cannot give each of"
          f" {layout.num_replicas} replicas one example in each of"
          f" {num_steps} steps without padding; use a global batch size of"
          f" at least {num_examples} or fewer replicas.")
    slot_size = (layout.batch_size if padded
                 else math.ceil(num_examples / slots))

    def rows_and_seeds(element):
      if padded:
        ids = layout.example_ids(element)
        end = num_examples
      else:
        step, replica = layout.step_and_replica(element)
        slot = step * layout.num_replicas + replica
        start = slot * num_examples // slots
        end = (slot + 1) * num_examples // slots
        ids = start + tf.range(slot_size, dtype=tf.int64)
      valid = ids < end
      rows = tf.minimum(ids, num_examples - 1)
      return rows, augment_seeds(_EVAL_AUGMENT_SALT, rows), valid

    batches = _load(layout.elements(0, num_steps), loader, rows_and_seeds,
                    slot_size)
    if padded:
      batches = batches.map(lambda x, y, valid: (x, y, tf.cast(valid,
                                                               tf.float32)))
    else:
      batches = batches.map(lambda x, y, valid: _mask((x, y), valid))
    return _finish(batches)

  return dataset_fn, num_steps
