"""Input functions for any source: in-memory arrays or TFRecord files."""

from datasets import config as config_lib
from datasets import pipeline
from datasets import tfrecord_pipeline
from datasets.sources import ArraySource
from datasets.tfrecord import TFRecordSource


def train_dataset_fn(source: ArraySource | TFRecordSource,
                     config: config_lib.DataConfig, *, start_step: int):
  """The training `dataset_fn`, serving steps from `start_step` on."""
  if isinstance(source, TFRecordSource):
    return tfrecord_pipeline.create_train_dataset_fn(
        source, global_batch_size=config.global_batch_size, seed=config.seed,
        start_step=start_step, shuffle=config.shuffle, cache=config.cache,
        shuffle_buffer=config.shuffle_buffer)
  return pipeline.create_train_dataset_fn(
      source.train_features, source.train_labels,
      global_batch_size=config.global_batch_size, seed=config.seed,
      start_step=start_step, shuffle=config.shuffle,
      feature_scale=source.feature_scale)


def eval_input(source: ArraySource | TFRecordSource,
               config: config_lib.DataConfig, *, num_input_pipelines: int):
  """The eval `dataset_fn` and its number of steps (each example once)."""
  batch = config.global_batch_size
  if isinstance(source, TFRecordSource):
    steps = tfrecord_pipeline.eval_steps(source, batch, num_input_pipelines)
    return tfrecord_pipeline.create_eval_dataset_fn(
        source, global_batch_size=batch, num_steps=steps), steps
  return pipeline.create_eval_dataset_fn(
      source.eval_features, source.eval_labels, global_batch_size=batch,
      feature_scale=source.feature_scale), pipeline.eval_steps(
          source.num_eval_examples, batch)
