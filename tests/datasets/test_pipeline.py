import numpy as np
import pytest
import tensorflow as tf

from datasets import pipeline

NUM_EXAMPLES = 100


def id_arrays(num_examples=NUM_EXAMPLES):
  """Features are the example ids themselves, so batches reveal the order."""
  ids = np.arange(num_examples, dtype=np.int32)
  return ids[:, None], ids


def context(pipelines, pipeline_id, replicas):
  return tf.distribute.InputContext(num_input_pipelines=pipelines,
                                    input_pipeline_id=pipeline_id,
                                    num_replicas_in_sync=replicas)


def take_ids(dataset, count):
  return [batch[1].numpy().tolist() for batch in dataset.take(count)]


def global_steps(num_steps, *, pipelines, replicas, global_batch_size=20,
                 seed=7, start_step=0, shuffle=True):
  """Ids of each global step, concatenated over pipelines in replica order."""
  features, labels = id_arrays()
  dataset_fn = pipeline.create_train_dataset_fn(
      features, labels, global_batch_size=global_batch_size, seed=seed,
      start_step=start_step, shuffle=shuffle)
  local = replicas // pipelines
  per_pipeline = [take_ids(dataset_fn(context(pipelines, p, replicas)),
                           num_steps * local) for p in range(pipelines)]
  steps = []
  for step in range(num_steps):
    ids = []
    for batches in per_pipeline:
      for batch in batches[step * local:(step + 1) * local]:
        ids += batch
    steps.append(ids)
  return steps


def test_per_replica_batch_size():
  assert pipeline.per_replica_batch_size(64, 4) == 16
  with pytest.raises(ValueError, match=r"global batch size \(10\) must be a"
                     r" positive multiple of the number of replicas \(4\)"):
    pipeline.per_replica_batch_size(10, 4)


def test_every_epoch_visits_every_example_once():
  ids = np.concatenate(global_steps(10, pipelines=1, replicas=1))  # 2 epochs
  for epoch in (ids[:NUM_EXAMPLES], ids[NUM_EXAMPLES:]):
    assert sorted(epoch.tolist()) == list(range(NUM_EXAMPLES))
  assert ids[:NUM_EXAMPLES].tolist() != list(range(NUM_EXAMPLES))
  assert ids[:NUM_EXAMPLES].tolist() != ids[NUM_EXAMPLES:].tolist()


def test_batches_spanning_an_epoch_boundary_stay_exact():
  # 30 does not divide 100: steps 3 and 6 straddle epoch boundaries.
  ids = np.concatenate(global_steps(10, pipelines=1, replicas=1,
                                    global_batch_size=30))
  for epoch in range(3):
    chunk = ids[epoch * NUM_EXAMPLES:(epoch + 1) * NUM_EXAMPLES]
    assert sorted(chunk.tolist()) == list(range(NUM_EXAMPLES))


@pytest.mark.parametrize("pipelines,replicas", [(1, 2), (1, 4), (2, 2),
                                                (2, 4), (4, 4)])
def test_global_batches_do_not_depend_on_replicas_or_workers(pipelines,
                                                             replicas):
  reference = global_steps(8, pipelines=1, replicas=1)
  sharded = global_steps(8, pipelines=pipelines, replicas=replicas)
  assert sharded == reference
  for step in sharded:  # No example twice within a step: shards disjoint.
    assert len(set(step)) == len(step)


def test_order_depends_only_on_seed():
  assert (global_steps(5, pipelines=1, replicas=1, seed=3)
          == global_steps(5, pipelines=1, replicas=1, seed=3))
  assert (global_steps(5, pipelines=1, replicas=1, seed=3)
          != global_steps(5, pipelines=1, replicas=1, seed=4))


def test_start_step_resumes_the_exact_stream():
  full = global_steps(12, pipelines=2, replicas=4)
  resumed = global_steps(5, pipelines=2, replicas=4, start_step=7)
  assert resumed == full[7:]


def test_unshuffled_reads_in_order():
  ids = np.concatenate(global_steps(6, pipelines=1, replicas=2,
                                    shuffle=False))
  assert ids.tolist() == [i % NUM_EXAMPLES for i in range(120)]


def test_features_are_scaled_to_float32():
  features = np.full((10, 2), 255, np.uint8)
  dataset_fn = pipeline.create_train_dataset_fn(
      features, np.zeros(10, np.int32), global_batch_size=4, seed=0,
      feature_scale=1 / 255)
  x, y = next(iter(dataset_fn(None)))
  assert x.dtype == tf.float32 and x.shape == (4, 2)
  np.testing.assert_allclose(x.numpy(), 1.0)
  assert y.shape == (4,)


def test_batch_larger_than_dataset_is_rejected():
  features, labels = id_arrays(10)
  dataset_fn = pipeline.create_train_dataset_fn(
      features, labels, global_batch_size=16, seed=0)
  with pytest.raises(ValueError, match="larger than the 10 training"):
    dataset_fn(None)


@pytest.mark.parametrize("pipelines,replicas,batch", [(1, 1, 32), (1, 4, 32),
                                                      (2, 4, 24), (4, 4, 4)])
def test_eval_covers_each_example_exactly_once(pipelines, replicas, batch):
  features, labels = id_arrays(37)  # Prime: never divides.
  dataset_fn = pipeline.create_eval_dataset_fn(features, labels,
                                               global_batch_size=batch)
  steps = pipeline.eval_steps(37, batch)
  counted = np.zeros(37)
  for p in range(pipelines):
    batches = list(dataset_fn(context(pipelines, p, replicas)))
    assert len(batches) == steps * replicas // pipelines
    for x, y, weight in batches:
      assert x.shape[0] == batch // replicas  # Static, full batches.
      np.add.at(counted, y.numpy(), weight.numpy())
  np.testing.assert_array_equal(counted, np.ones(37))


def test_mirrored_replicas_receive_consecutive_slices_of_the_global_batch():
  from tests.conftest import make_strategy
  strategy = make_strategy(4)
  features, labels = id_arrays()
  dataset = strategy.distribute_datasets_from_function(
      pipeline.create_train_dataset_fn(features, labels, global_batch_size=20,
                                       seed=7))
  reference = global_steps(3, pipelines=1, replicas=1)
  iterator = iter(dataset)
  for step in range(3):
    _, labels_per_replica = next(iterator)
    ids = [t.numpy().tolist()
           for t in strategy.experimental_local_results(labels_per_replica)]
    assert sum(ids, []) == reference[step]
