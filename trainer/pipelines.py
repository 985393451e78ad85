"""`BuiltOnce`: a training Source whose input pipelines are built once.

Building a model_fn's model needs the spec of a training batch, and the
runner needs the pipeline itself: both ask `train_dataset_fn` for the same
start step and input context, and get the one pipeline built the first time
(a user's dataset function, reading files, is not called twice).
"""

import tensorflow as tf


def _context_key(input_context) -> tuple[int, int, int]:
  if input_context is None:
    return (1, 0, 1)
  return (input_context.num_input_pipelines, input_context.input_pipeline_id,
          input_context.num_replicas_in_sync)


class BuiltOnce:
  """Wraps a Source: each training pipeline is built once, then reused.

  Every other attribute (name, num_classes, eval_dataset_fn, ...) is the
  wrapped Source's.
  """

  def __init__(self, source):
    self.source = source
    self._built = {}

  def __getattr__(self, name):
    return getattr(self.source, name)

  def train_dataset_fn(self, *, global_batch_size: int, seed: int,
                       start_step: int = 0):
    """The wrapped source's `train_dataset_fn`, each pipeline kept."""
    build = self.source.train_dataset_fn(global_batch_size=global_batch_size,
                                         seed=seed, start_step=start_step)

    def dataset_fn(input_context=None):
      key = (global_batch_size, seed, start_step, _context_key(input_context))
      if key not in self._built:
        self._built[key] = build(input_context)
      return self._built[key]

    return dataset_fn


def element_spec(strategy: tf.distribute.Strategy, source, *,
                 global_batch_size: int, seed: int, start_step: int = 0):
  """Specs of one per-replica training batch of this task's pipeline.

  The pipeline is built for the input context the strategy gives this task,
  so a `BuiltOnce` source hands the same one to the runner later.
  """
  specs = []
  dataset_fn = source.train_dataset_fn(global_batch_size=global_batch_size,
                                       seed=seed, start_step=start_step)

  def recording_fn(input_context):
    dataset = dataset_fn(input_context)
    specs.append(dataset.element_spec)
    return dataset

  strategy.distribute_datasets_from_function(recording_fn)
  return specs[0]
