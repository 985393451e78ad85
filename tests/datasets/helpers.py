"""Shared helpers: fake input contexts and global steps of a Source."""

import numpy as np
import tensorflow as tf


def context(pipelines: int, pipeline_id: int, replicas: int):
  return tf.distribute.InputContext(num_input_pipelines=pipelines,
                                    input_pipeline_id=pipeline_id,
                                    num_replicas_in_sync=replicas)


def to_numpy(structure):
  return tf.nest.map_structure(lambda t: t.numpy(), structure)


def global_steps(source, num_steps, *, pipelines=1, replicas=1,
                 global_batch_size=8, seed=7, start_step=0):
  """[(features, labels)] of each global step, replicas concatenated."""
  dataset_fn = source.train_dataset_fn(global_batch_size=global_batch_size,
                                       seed=seed, start_step=start_step)
  local = replicas // pipelines
  per_pipeline = [
      [to_numpy(batch) for batch in
       dataset_fn(context(pipelines, p, replicas)).take(num_steps * local)]
      for p in range(pipelines)]
  steps = []
  for step in range(num_steps):
    batches = [batch for batches in per_pipeline
               for batch in batches[step * local:(step + 1) * local]]
    steps.append(tf.nest.map_structure(lambda *parts: np.concatenate(parts),
                                       *batches))
  return steps


def assert_steps_equal(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    tf.nest.map_structure(np.testing.assert_array_equal, a, b)


def eval_batches(source, *, global_batch_size, pipelines=1, replicas=1,
                 padded=True):
  """(steps, [per-pipeline lists of numpy batches])."""
  dataset_fn, steps = source.eval_dataset_fn(
      global_batch_size=global_batch_size, num_input_pipelines=pipelines,
      padded=padded)
  return steps, [[to_numpy(b) for b in dataset_fn(context(pipelines, p,
                                                          replicas))]
                 for p in range(pipelines)]
