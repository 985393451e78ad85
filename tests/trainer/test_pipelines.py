"""trainer.pipelines.distribute: the batches TensorFlow's distribution gives,
without its multi-device iterator when one CPU replica reads them."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_strategy
from trainer import pipelines


def _dataset_fn(input_context=None):
  per_replica = (input_context.get_per_replica_batch_size(8)
                 if input_context else 8)
  return tf.data.Dataset.range(64).batch(per_replica).map(
      lambda x: (tf.cast(x, tf.float32), x % 2))


def _batches(iterable, count):
  iterator = iter(iterable)
  return [tf.nest.map_structure(lambda t: np.asarray(t), next(iterator))
          for _ in range(count)]


def test_one_cpu_replica_reads_the_dataset_directly():
  strategy = make_strategy(1)
  local = pipelines.distribute(strategy, _dataset_fn)
  assert not isinstance(local, tf.distribute.DistributedDataset)
  expected = _batches(strategy.distribute_datasets_from_function(_dataset_fn),
                      3)
  got = _batches(local, 3)
  for (x, y), (ex, ey) in zip(got, expected):
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
  # A new iter() starts over, as a distributed dataset's does.
  np.testing.assert_array_equal(_batches(local, 1)[0][0], expected[0][0])


def test_the_step_sees_the_same_batches_in_a_compiled_loop():
  strategy = make_strategy(1)
  iterator = iter(pipelines.distribute(strategy, _dataset_fn))
  total = tf.Variable(0.0)

  @tf.function
  def loop(iterator, steps):
    for _ in tf.range(steps):
      strategy.run(lambda x, y: total.assign_add(tf.reduce_sum(x)),
                   args=next(iterator))

  loop(iterator, tf.constant(3))
  assert float(total) == float(sum(range(24)))


@pytest.mark.parametrize("fetch", [None, True])
def test_several_replicas_or_device_copies_keep_tensorflows_iterator(fetch):
  options = (None if fetch is None
             else tf.distribute.InputOptions(experimental_fetch_to_device=True))
  replicas = 2 if fetch is None else 1
  distributed = pipelines.distribute(make_strategy(replicas), _dataset_fn,
                                     options)
  assert isinstance(distributed, tf.distribute.DistributedDataset)
