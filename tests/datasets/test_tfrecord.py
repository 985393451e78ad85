"""TFRecord writer and reader: coverage, sharding, resume, cache, eval."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import sources
from datasets import tfrecord
from datasets import tfrecord_pipeline as tp

TRAIN, EVAL = 103, 29  # Odd sizes: shards, batches and pipelines do not divide.


@pytest.fixture(scope="module")
def arrays():
  rng = np.random.default_rng(0)
  # Row i of the features holds the value i everywhere: rows are identifiable.
  x = np.repeat(np.arange(TRAIN + EVAL, dtype=np.uint16)[:, None, None],
                6, axis=1).reshape(-1, 3, 2)
  y = rng.integers(0, 5, size=TRAIN + EVAL)
  return x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]


def write(directory, arrays, train_shards, eval_shards=2):
  x, y, ex, ey = arrays
  return tfrecord.write_dataset(
      str(directory), {"train": (x, y), "eval": (ex, ey)},
      num_shards={"train": train_shards, "eval": eval_shards})


@pytest.fixture(scope="module")
def four_files(tmp_path_factory, arrays):
  return write(tmp_path_factory.mktemp("four"), arrays, 4)


def context(pipeline, pipelines, replicas_per_pipeline=1):
  return tf.distribute.InputContext(
      num_input_pipelines=pipelines, input_pipeline_id=pipeline,
      num_replicas_in_sync=pipelines * replicas_per_pipeline)


def ids(batches):
  """Example ids (the feature value) of each batch."""
  return [x.numpy()[:, 0, 0].astype(int).tolist() for x, _ in batches]


def stream(source, pipeline=0, pipelines=1, *, steps, start_step=0,
           batch=8, **kwargs):
  fn = tp.create_train_dataset_fn(source, global_batch_size=batch * pipelines,
                                  seed=7, start_step=start_step, **kwargs)
  return ids(fn(context(pipeline, pipelines)).take(steps))


def test_written_files_describe_and_hold_the_arrays(four_files, arrays):
  x, y, _, _ = arrays
  assert four_files.num_train_examples == TRAIN
  assert [count for _, count in four_files.files["train"]] == [26, 26, 26, 25]
  assert four_files.input_shape == (3, 2) and four_files.num_classes == 5
  parsed = list(tp._records(four_files, "train", 0, 1))
  assert sorted(int(f.numpy()[0, 0]) for f, _ in parsed) == list(range(TRAIN))
  for features, label in parsed:
    row = int(features.numpy()[0, 0])
    np.testing.assert_array_equal(features.numpy(), x[row].astype(np.float32))
    assert int(label) == y[row]


@pytest.mark.parametrize("shards,pipelines", [(4, 1), (4, 2), (2, 3)])
def test_each_epoch_reads_every_example_once(tmp_path, arrays, shards,
                                             pipelines):
  # 2 files for 3 pipelines shards by record (DATA), else by file (FILE).
  source = write(tmp_path, arrays, shards)
  seen = []
  for pipeline in range(pipelines):
    count = source.pipeline_examples("train", pipeline, pipelines)
    records = sum(stream(source, pipeline, pipelines, steps=2 * TRAIN,
                         batch=1), [])
    first, second = records[:count], records[count:2 * count]
    assert sorted(first) == sorted(second) and first != second  # Reshuffled.
    seen += first
  assert sorted(seen) == list(range(TRAIN))


def test_order_depends_on_the_seed_only(four_files):
  first = stream(four_files, steps=20)
  assert stream(four_files, steps=20) == first
  other = tp.create_train_dataset_fn(four_files, global_batch_size=8, seed=8)
  assert ids(other(context(0, 1)).take(20)) != first


@pytest.mark.parametrize("cache", [False, True])
def test_resume_serves_exactly_the_remaining_batches(four_files, cache):
  straight = stream(four_files, 1, 2, steps=60, cache=cache)
  resumed = stream(four_files, 1, 2, steps=25, start_step=35, cache=cache)
  assert resumed == straight[35:]


def test_cache_serves_later_epochs_without_the_files(tmp_path, arrays):
  source = write(tmp_path, arrays, 4)
  fn = tp.create_train_dataset_fn(source, global_batch_size=8, seed=7,
                                  cache=True)
  iterator = iter(fn(context(0, 1)))
  first_epoch = [next(iterator) for _ in range(TRAIN // 8 + 1)]
  for path in source.paths("train"):
    os.remove(path)
  later = [next(iterator) for _ in range(40)]  # About three more epochs.
  assert len(first_epoch) + len(later) == 53


@pytest.mark.parametrize("pipelines,replicas", [(1, 1), (2, 2), (3, 1)])
def test_eval_covers_every_example_once(four_files, arrays, pipelines,
                                        replicas):
  batch = 4 * pipelines * replicas
  steps = tp.eval_steps(four_files, batch, pipelines)
  seen = []
  for pipeline in range(pipelines):
    fn = tp.create_eval_dataset_fn(four_files, global_batch_size=batch,
                                   num_steps=steps)
    batches = list(fn(context(pipeline, pipelines, replicas)))
    assert len(batches) == steps * replicas  # Same count on every pipeline.
    for features, _, weights in batches:
      seen += features.numpy()[weights.numpy() == 1, 0, 0].astype(int).tolist()
  assert sorted(seen) == list(range(TRAIN, TRAIN + EVAL))


def test_bad_directories_are_one_sentence(tmp_path, arrays):
  with pytest.raises(sources.DataError, match="needs --data_dir"):
    tfrecord.load(None)
  with pytest.raises(sources.DataError, match="holds no dataset.json"):
    tfrecord.load(str(tmp_path))
  source = write(tmp_path / "d", arrays, 2)
  with pytest.raises(sources.DataError, match="already holds a dataset"):
    write(tmp_path / "d", arrays, 2)
  os.remove(source.paths("train")[1])
  with pytest.raises(sources.DataError, match="the train files are missing"):
    tfrecord.load(source.directory)
  (tmp_path / "d" / "dataset.json").write_text(json.dumps({"files": 3}))
  with pytest.raises(sources.DataError, match="is unreadable"):
    tfrecord.load(source.directory)
  with pytest.raises(sources.DataError, match="shards for"):
    write(tmp_path / "e", arrays, TRAIN + 1)
