"""TFRecords: the written directory format and the user's own schema."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from datasets import DataError, from_tfrecords
from datasets import tfrecord
from datasets.tfrecord_stream import pipeline_examples
from tests.datasets.helpers import context, eval_batches

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
  tfrecord.write_dataset(str(directory), {"train": (x, y), "eval": (ex, ey)},
                         num_shards={"train": train_shards,
                                     "eval": eval_shards})
  return tfrecord.load_sources(str(directory))


@pytest.fixture(scope="module")
def four_files(tmp_path_factory, arrays):
  return write(tmp_path_factory.mktemp("four"), arrays, 4)


def ids(batches):
  return [x.numpy()[:, 0, 0].astype(int).tolist() for x, _ in batches]


def stream(source, pipeline=0, pipelines=1, *, steps, start_step=0, batch=8):
  fn = source.train_dataset_fn(global_batch_size=batch * pipelines, seed=7,
                               start_step=start_step)
  return ids(fn(context(pipelines, pipeline, pipelines)).take(steps))


def test_written_directory_loads_as_two_sources(four_files):
  train, held_out = four_files
  assert train.num_examples == TRAIN and held_out.num_examples == EVAL
  assert train.counts == [26, 26, 26, 25]
  assert train.input_shape == (3, 2) and train.num_classes == 5
  assert "103 TFRecord examples of 3x2 uint16" in train.description
  with pytest.raises(DataError, match="cannot be split"):
    train.split(0.1)


@pytest.mark.parametrize("shards,pipelines", [(4, 2), (2, 3)])
def test_each_epoch_reads_every_example_once(tmp_path, arrays, shards,
                                             pipelines):
  train, _ = write(tmp_path, arrays, shards)
  seen = []
  for pipeline in range(pipelines):
    count = pipeline_examples(train.counts, pipeline, pipelines)
    records = sum(stream(train, pipeline, pipelines, steps=2 * count,
                         batch=1), [])
    first, second = records[:count], records[count:]
    assert sorted(first) == sorted(second) and first != second  # Reshuffled.
    seen += first
  assert sorted(seen) == list(range(TRAIN))


@pytest.mark.parametrize("cache", [False, True])
def test_resume_serves_exactly_the_remaining_batches(four_files, cache):
  train, _ = four_files
  train.cache = cache
  try:
    straight = stream(train, 1, 2, steps=30)
    assert stream(train, 1, 2, steps=10, start_step=20) == straight[20:]
  finally:
    train.cache = False


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("pipelines,replicas", [(1, 1), (2, 4), (3, 3)])
def test_eval_covers_every_example_once(four_files, pipelines, replicas,
                                        padded):
  _, held_out = four_files
  steps, per_pipeline = eval_batches(
      held_out, global_batch_size=2 * replicas, pipelines=pipelines,
      replicas=replicas, padded=padded)
  seen, sizes = [], []
  for batches in per_pipeline:
    assert len(batches) == steps * replicas // pipelines
    for batch in batches:
      x = batch[0][:, 0, 0].astype(int)
      sizes.append(len(x))
      seen += (x[batch[2] == 1] if padded else x).tolist()
  assert sorted(seen) == list(range(TRAIN, TRAIN + EVAL))
  if not padded:
    assert min(sizes) >= 1


def write_user_records(path, count, start=0):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for i in range(start, start + count):
      example = tf.train.Example(features=tf.train.Features(feature={
          "pixels": tf.train.Feature(float_list=tf.train.FloatList(
              value=[i, i + 0.5])),
          "extra": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
          "label": tf.train.Feature(int64_list=tf.train.Int64List(
              value=[i % 3])),
          "target": tf.train.Feature(float_list=tf.train.FloatList(
              value=[i / 10]))}))
      writer.write(example.SerializeToString())


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
  root = tmp_path_factory.mktemp("user")
  write_user_records(root / "a.tfrecord", 7)
  write_user_records(root / "b.tfrecord", 6, start=7)
  return root


def test_user_schema_single_and_named(user_files):
  pixels = tf.io.FixedLenFeature([2], tf.float32)
  source = from_tfrecords(str(user_files / "*.tfrecord"),
                          features={"pixels": pixels}, label="label")
  assert source.num_examples == 13 and source.counts == [7, 6]
  assert source.input_shape == (2,) and source.num_classes == 3
  x, y = next(iter(source.train_dataset_fn(global_batch_size=4, seed=0)(
      None)))
  assert x.shape == (4, 2) and y.dtype == tf.int32
  np.testing.assert_array_equal(y.numpy(), x.numpy()[:, 0].astype(int) % 3)
  named = from_tfrecords(
      str(user_files / "*.tfrecord"),
      features={"pixels": pixels,
                "extra": tf.io.FixedLenFeature([], tf.int64),
                "target": tf.io.FixedLenFeature([], tf.float32)},
      label=["label", "target"])
  assert named.input_shape == {"pixels": (2,), "extra": ()}
  assert named.num_classes == {"label": 3, "target": 1}
  x, y = next(iter(named.train_dataset_fn(global_batch_size=4, seed=0)(None)))
  assert x["extra"].dtype == tf.float32 and set(y) == {"label", "target"}


def test_parse_fn_preprocess_and_resume(user_files):

  def parse(record):
    parsed = tf.io.parse_single_example(
        record, {"pixels": tf.io.FixedLenFeature([2], tf.float32),
                 "label": tf.io.FixedLenFeature([], tf.int64)})
    return parsed["pixels"], parsed["label"]

  def jitter(x, y, seed):
    return x + tf.random.stateless_uniform([2], seed=seed), y

  source = from_tfrecords(str(user_files / "*.tfrecord"), parse_fn=parse,
                          preprocess=jitter, num_classes=3)
  assert source.input_shape == (2,) and "via parse_fn" in source.description
  run = lambda start, steps: [b[0].numpy() for b in source.train_dataset_fn(
      global_batch_size=3, seed=1, start_step=start)(None).take(steps)]
  full = run(0, 12)
  np.testing.assert_array_equal(np.stack(run(7, 5)), np.stack(full[7:]))
  np.testing.assert_array_equal(np.stack(run(0, 12)), np.stack(full))


def test_bad_input_is_one_sentence(tmp_path, arrays, user_files):
  with pytest.raises(DataError, match="needs data_dir"):
    tfrecord.load(None)
  with pytest.raises(DataError, match="holds no dataset.json"):
    tfrecord.load(str(tmp_path))
  write(tmp_path / "d", arrays, 2)
  with pytest.raises(DataError, match="already holds a dataset"):
    write(tmp_path / "d", arrays, 2)
  os.remove(tmp_path / "d" / "train-00001-of-00002.tfrecord")
  with pytest.raises(DataError, match="the train files are missing"):
    tfrecord.load(str(tmp_path / "d"))
  (tmp_path / "d" / "dataset.json").write_text(json.dumps({"files": 3}))
  with pytest.raises(DataError, match="is unreadable"):
    tfrecord.load(str(tmp_path / "d"))
  with pytest.raises(DataError, match="either features and label, or"):
    from_tfrecords(str(user_files / "a.tfrecord"))
  with pytest.raises(DataError, match="no TFRecord file matches"):
    from_tfrecords(str(tmp_path / "*.tfrecord"), parse_fn=lambda r: r)
  (tmp_path / "junk.tfrecord").write_bytes(b"garbage bytes here")
  with pytest.raises(DataError, match="not a readable TFRecord file"):
    from_tfrecords(str(tmp_path / "junk.tfrecord"), parse_fn=lambda r: r)
