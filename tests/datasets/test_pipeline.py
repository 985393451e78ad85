"""The indexable stream: coverage, replica independence, resume, eval."""

import numpy as np
import pytest
import tensorflow as tf

from datasets import DataError, from_arrays
from tests.datasets.helpers import (assert_steps_equal, context,
                                    eval_batches, global_steps)

NUM_EXAMPLES = 100


def id_source(num_examples=NUM_EXAMPLES, **kwargs):
  """Labels are the example ids, so batches reveal the order."""
  ids = np.arange(num_examples, dtype=np.int32)
  return from_arrays(ids[:, None].astype(np.float32), ids, **kwargs)


def ids(steps):
  return [labels.tolist() for _, labels in steps]


def test_every_epoch_visits_every_example_once():
  order = np.concatenate(ids(global_steps(id_source(), 10,
                                          global_batch_size=20)))
  for epoch in (order[:NUM_EXAMPLES], order[NUM_EXAMPLES:]):
    assert sorted(epoch.tolist()) == list(range(NUM_EXAMPLES))
  assert order[:NUM_EXAMPLES].tolist() != list(range(NUM_EXAMPLES))
  assert order[:NUM_EXAMPLES].tolist() != order[NUM_EXAMPLES:].tolist()


@pytest.mark.parametrize("pipelines,replicas", [(1, 2), (1, 4), (2, 4),
                                                (4, 4)])
def test_global_batches_do_not_depend_on_replicas_or_workers(pipelines,
                                                             replicas):
  source = id_source()
  reference = global_steps(source, 6, global_batch_size=20)
  assert_steps_equal(global_steps(source, 6, pipelines=pipelines,
                                  replicas=replicas, global_batch_size=20),
                     reference)


def test_order_depends_only_on_seed():
  source = id_source()
  assert ids(global_steps(source, 4, seed=3)) == ids(global_steps(source, 4,
                                                                  seed=3))
  assert ids(global_steps(source, 4, seed=3)) != ids(global_steps(source, 4,
                                                                  seed=4))


def test_start_step_resumes_the_exact_stream():
  source = id_source()
  full = global_steps(source, 30, pipelines=2, replicas=4)
  resumed = global_steps(source, 5, pipelines=2, replicas=4, start_step=25)
  assert_steps_equal(resumed, full[25:])


def test_unshuffled_reads_in_order():
  order = np.concatenate(ids(global_steps(id_source(shuffle=False), 6,
                                          replicas=2, pipelines=1,
                                          global_batch_size=20)))
  assert order.tolist() == [i % NUM_EXAMPLES for i in range(120)]


def test_batch_errors_are_data_errors():
  source = id_source(10)
  with pytest.raises(DataError, match="larger than the 10 training"):
    source.train_dataset_fn(global_batch_size=16, seed=0)(None)
  with pytest.raises(DataError, match=r"global batch size \(10\) must be a"
                     r" positive multiple of the number of replicas \(4\)"):
    source.train_dataset_fn(global_batch_size=10, seed=0)(context(1, 0, 4))


@pytest.mark.parametrize("pipelines,replicas,batch", [(1, 1, 32), (1, 4, 32),
                                                      (2, 4, 24), (4, 4, 4)])
def test_padded_eval_covers_each_example_exactly_once(pipelines, replicas,
                                                      batch):
  steps, per_pipeline = eval_batches(id_source(37), global_batch_size=batch,
                                     pipelines=pipelines, replicas=replicas)
  counted = np.zeros(37)
  for batches in per_pipeline:
    assert len(batches) == steps * replicas // pipelines
    for x, y, weight in batches:
      assert x.shape[0] == batch // replicas  # Static, full batches.
      np.add.at(counted, y, weight)
  np.testing.assert_array_equal(counted, np.ones(37))


@pytest.mark.parametrize("pipelines,replicas,batch", [(1, 1, 32), (1, 4, 32),
                                                      (2, 4, 24), (4, 4, 8)])
def test_unpadded_eval_spreads_each_example_once(pipelines, replicas, batch):
  steps, per_pipeline = eval_batches(id_source(37), global_batch_size=batch,
                                     pipelines=pipelines, replicas=replicas,
                                     padded=False)
  assert steps == -(-37 // batch)
  seen, sizes = [], []
  for batches in per_pipeline:
    assert len(batches) == steps * replicas // pipelines
    for batch_ in batches:
      assert len(batch_) == 2  # (x, y): no weights.
      sizes.append(len(batch_[1]))
      seen += batch_[1].tolist()
  assert sorted(seen) == list(range(37))
  assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_unpadded_eval_with_too_few_examples_is_refused():
  dataset_fn, _ = id_source(3).eval_dataset_fn(
      global_batch_size=4, num_input_pipelines=1, padded=False)
  with pytest.raises(DataError, match="3 eval examples cannot give each of 4"):
    dataset_fn(context(1, 0, 4))


def test_mirrored_replicas_receive_consecutive_slices_of_the_global_batch():
  from tests.conftest import make_strategy
  strategy = make_strategy(4)
  source = id_source()
  dataset = strategy.distribute_datasets_from_function(
      source.train_dataset_fn(global_batch_size=20, seed=7, start_step=0))
  reference = ids(global_steps(source, 3, global_batch_size=20))
  iterator = iter(dataset)
  for step in range(3):
    _, labels_per_replica = next(iterator)
    got = [t.numpy().tolist()
           for t in strategy.experimental_local_results(labels_per_replica)]
    assert sum(got, []) == reference[step]


def flip_with_seed(features, label, seed):
  noise = tf.random.stateless_uniform([], seed=seed)
  return features + noise, label


def test_preprocess_seed_is_deterministic_differs_per_epoch_and_resumes():
  source = id_source(8, preprocess=flip_with_seed, shuffle=False)
  steps = global_steps(source, 4, global_batch_size=4)  # Two epochs.
  again = global_steps(source, 4, global_batch_size=4)
  assert_steps_equal(steps, again)
  noise = [x[:, 0] - y for x, y in steps]
  assert not np.allclose(np.concatenate(noise[:2]), np.concatenate(noise[2:]))
  assert len(set(np.concatenate(noise).tolist())) == 16  # Unique per example.
  assert_steps_equal(global_steps(source, 2, global_batch_size=4,
                                  start_step=2), steps[2:])
  assert_steps_equal(global_steps(source, 4, global_batch_size=4,
                                  replicas=2, pipelines=2), steps)


def test_eval_preprocess_gets_a_fixed_seed():
  source = id_source(8, preprocess=flip_with_seed)
  first = eval_batches(source, global_batch_size=4)[1]
  second = eval_batches(source, global_batch_size=4)[1]
  tf.nest.map_structure(np.testing.assert_array_equal, first, second)


def test_two_argument_preprocess():
  source = id_source(8, preprocess=lambda x, y: (x * 2, y))
  (x, y), = global_steps(source, 1, global_batch_size=4)
  np.testing.assert_array_equal(x[:, 0], 2 * y)
  with pytest.raises(DataError, match="not 1 arguments"):
    id_source(8, preprocess=lambda x: x)


def test_mirrored_unpadded_eval_has_dynamic_batches():
  from tests.conftest import make_strategy
  strategy = make_strategy(2)
  dataset_fn, steps = id_source(7).eval_dataset_fn(
      global_batch_size=4, num_input_pipelines=1, padded=False)
  iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
  seen = []
  for _ in range(steps):
    _, labels = next(iterator)
    for part in strategy.experimental_local_results(labels):
      assert len(part) in (1, 2)
      seen += part.numpy().tolist()
  assert sorted(seen) == list(range(7))
