"""from_dataset_fn and from_path."""

import json

import numpy as np
import pytest
import tensorflow as tf

from datasets import DataError, from_dataset_fn, from_path
from tests.datasets.helpers import context


def user_fn(input_context, seed=0):
  batch = input_context.get_per_replica_batch_size(8)
  dataset = tf.data.Dataset.range(20).shard(
      input_context.num_input_pipelines, input_context.input_pipeline_id)
  dataset = dataset.shuffle(20, seed=seed)
  return dataset.map(lambda i: (tf.cast(i, tf.float32)[None], i % 2)).batch(
      batch, drop_remainder=True)


def labels(dataset, count):
  return [x.numpy()[:, 0].tolist() for x, _ in dataset.take(count)]


def test_dataset_fn_repeats_and_resumes_by_skipping():
  source = from_dataset_fn(user_fn, num_examples=20, input_shape=[1],
                           num_classes=2)
  assert source.input_shape == (1,) and "20 examples" in source.description
  make = lambda start: source.train_dataset_fn(
      global_batch_size=8, seed=3, start_step=start)(context(1, 0, 2))
  full = labels(make(0), 12)  # 2 per step; the user's batches repeat.
  assert labels(make(3), 6) == full[6:]
  with pytest.raises(DataError, match="cannot be split"):
    source.split(0.5)


def test_dataset_fn_eval_steps_and_errors():
  source = from_dataset_fn(user_fn, num_examples=20)
  dataset_fn, steps = source.eval_dataset_fn(global_batch_size=8)
  assert steps == 3
  with pytest.raises(DataError, match="needs its num_examples or steps"):
    from_dataset_fn(user_fn).eval_dataset_fn(global_batch_size=8)
  bad = from_dataset_fn(lambda context: [1, 2])
  with pytest.raises(DataError, match="returned list, not a tf.data.Dataset"):
    bad.train_dataset_fn(global_batch_size=8, seed=0)(None)


def test_from_path_kinds(tmp_path):
  np.savez(tmp_path / "plain.npz", x=np.zeros((4, 2), np.float32),
           y=np.arange(4))
  assert from_path(str(tmp_path / "plain.npz")).num_classes == 4
  np.savez(tmp_path / "named.npz", x_a=np.zeros((4, 2)), x_b=np.zeros((4, 1)),
           y_out=np.arange(4) % 2)
  named = from_path(str(tmp_path / "named.npz"))
  assert named.input_shape == {"a": (2,), "b": (1,)} and named.num_classes == 2
  (tmp_path / "t.csv").write_text("f,label\n1,0\n2,1\n")
  assert from_path(str(tmp_path / "t.csv"), label_column="label").num_examples == 2
  with pytest.raises(DataError, match="needs label_column"):
    from_path(str(tmp_path / "t.csv"))
  (tmp_path / "images" / "cat").mkdir(parents=True)
  tf.io.write_file(str(tmp_path / "images" / "cat" / "a.png"),
                   tf.io.encode_png(tf.zeros((3, 3, 3), tf.uint8)))
  images = from_path(str(tmp_path / "images"), image_size=(4, 5))
  assert images.input_shape == (4, 5, 3)
  assert from_path(str(tmp_path / "images")).input_shape == (256, 256, 3)


def test_from_path_tfrecords_with_schema_json(tmp_path):
  with tf.io.TFRecordWriter(str(tmp_path / "d.tfrecord")) as writer:
    for i in range(5):
      writer.write(tf.train.Example(features=tf.train.Features(feature={
          "x": tf.train.Feature(float_list=tf.train.FloatList(value=[i, i])),
          "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[i]))})
                   ).SerializeToString())
  with pytest.raises(DataError, match="schema.json does not exist"):
    from_path(str(tmp_path / "d.tfrecord"))
  (tmp_path / "schema.json").write_text(json.dumps(
      {"features": {"x": {"shape": [2], "dtype": "float32"}}, "label": "y"}))
  source = from_path(str(tmp_path / "*.tfrecord"))
  assert source.input_shape == (2,) and source.num_classes == 5
  (tmp_path / "schema.json").write_text(json.dumps(
      {"features": {"x": {"shape": [2], "dtype": "float64"}}, "label": "y"}))
  with pytest.raises(DataError, match="needs a dtype of float32, int64"):
    from_path(str(tmp_path / "d.tfrecord"))


def test_from_path_refuses_unknown_kinds(tmp_path):
  (tmp_path / "model.h5").write_text("x")
  with pytest.raises(DataError, match="is of no known kind; give one of"):
    from_path(str(tmp_path / "model.h5"))
  with pytest.raises(DataError, match="does not exist"):
    from_path(str(tmp_path / "missing.npz"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no class subfolders of images and no"):
    from_path(str(tmp_path / "empty"))
  np.savez(tmp_path / "odd.npz", a=np.zeros(3))
  with pytest.raises(DataError, match="give x and y, features and labels"):
    from_path(str(tmp_path / "odd.npz"))
