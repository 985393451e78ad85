"""`from_dataset_fn`: the user's own `tf.data.Dataset` as a `Source`."""

import inspect
import math

from datasets import source as source_lib
from datasets.errors import DataError


def _takes_seed(fn) -> bool:
  try:
    parameters = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return False
  return "seed" in parameters


class DatasetFnSource(source_lib.Source):
  """A user's dataset function; see `from_dataset_fn`."""

  def __init__(self, fn, *, num_examples, input_shape, num_classes, name,
               steps):
    self.fn, self.name = fn, name
    self.num_examples = num_examples
    self.input_shape, self.num_classes = input_shape, num_classes
    self.steps = steps
    self.takes_seed = _takes_seed(fn)
    size = ("unknown size" if num_examples is None else
            f"{source_lib.format_count(num_examples)} examples")
    self.description = (f"the user's dataset function {name} ({size};"
                        " sharded, batched and preprocessed by it)")

  def _dataset(self, input_context, seed):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    dataset = (self.fn(input_context, seed=seed) if self.takes_seed
               else self.fn(input_context))
    if not isinstance(dataset, tf.data.Dataset):
      raise DataError(f"the dataset function {self.name} returned"
                      f" {type(dataset).__name__}, not a tf.data.Dataset.")
    return dataset

  def train_dataset_fn(self, *, global_batch_size: int, seed: int,
                       start_step: int = 0):
    from datasets import pipeline  # pylint: disable=import-outside-toplevel

    def dataset_fn(input_context=None):
      layout = pipeline.replica_layout(input_context, global_batch_size)
      dataset = self._dataset(input_context, seed).repeat()
      # Resume by reading: this pipeline's batches of the earlier steps.
      return pipeline.endless(dataset.skip(start_step * layout.local_replicas))

    return dataset_fn

  def eval_dataset_fn(self, *, global_batch_size: int,
                      num_input_pipelines: int = 1, padded: bool = True):
    del num_input_pipelines, padded  # The user's dataset decides both.
    steps = self.steps
    if steps is None and self.num_examples is None:
      raise DataError(f"evaluating with the dataset function {self.name}"
                      " needs its num_examples or steps.")
    if steps is None:
      steps = math.ceil(self.num_examples / global_batch_size)
    from datasets import pipeline  # pylint: disable=import-outside-toplevel

    def dataset_fn(input_context=None):
      layout = pipeline.replica_layout(input_context, global_batch_size)
      return self._dataset(input_context, 0).take(steps
                                                  * layout.local_replicas)

    return dataset_fn, steps


def from_dataset_fn(fn, *, num_examples: int | None = None,
                    input_shape=None, num_classes=None,
                    steps: int | None = None,
                    name: str | None = None) -> DatasetFnSource:
  """The user's own `tf.data` pipeline as one split.

  `fn(input_context)` (or `fn(input_context, seed=...)` to receive the
  run's seed) is called once per input pipeline and returns a dataset of
  PER-REPLICA batches `(features, labels)` or `(features, labels,
  sample_weight)`. The user shards and batches: typically
  `dataset.shard(input_context.num_input_pipelines,
  input_context.input_pipeline_id)` and
  `batch(input_context.get_per_replica_batch_size(global_batch_size))`;
  the harness does neither.

  Training: the harness repeats the dataset (if finite) and, to resume at
  step `s`, skips the first `s * replicas of this pipeline` batches by
  reading them (slow for long runs). Resume is exact only if the dataset
  is deterministic given the seed (seeded shuffles,
  `tf.data.Options.deterministic`, no stateful random ops).

  Evaluation: `fn` is called with seed 0 and its dataset is read once, for
  `steps` steps (default `ceil(num_examples / global batch)`); it must
  yield at least that many batches per replica (extra ones are ignored).
  Padding, weights and covering each example once are the user's: the
  harness neither pads nor weighs.

  Args:
    fn: The dataset function.
    num_examples: Examples per epoch, if known (needed for `epochs` and
      for eval without `steps`).
    input_shape: Shape of one example's features, if known (built-in
      models need it).
    num_classes: Classes, if known (built-in models need it).
    steps: Eval steps, overriding the default.
    name: Name for logs; default the function's name.

  Returns:
    A Source (not indexable: no `split`).

  Raises:
    DataError: If `fn` is not callable.
  """
  if not callable(fn):
    raise DataError("fn must be a function from a tf.distribute.InputContext"
                    " to a tf.data.Dataset.")
  return DatasetFnSource(
      fn, num_examples=num_examples,
      input_shape=tuple(input_shape) if isinstance(input_shape, (list, tuple))
      else input_shape, num_classes=num_classes,
      name=name or getattr(fn, "__name__", "dataset_fn"), steps=steps)
