import dataclasses

import numpy as np
import pytest

from datasets import config as config_lib
from datasets import sources


def test_digits_has_a_fixed_documented_split():
  first, second = sources.load_digits(), sources.load_digits()
  assert first.num_train_examples == 1437
  assert first.num_eval_examples == sources.DIGITS_TEST_EXAMPLES == 360
  assert first.input_shape == (8, 8, 1)
  assert first.num_classes == 10
  np.testing.assert_array_equal(first.eval_labels, second.eval_labels)
  assert first.train_features.max() * first.feature_scale == 1.0


def test_validation_split_takes_the_last_training_examples():
  source = sources.load_digits()
  split = sources.with_validation_split(source, 0.2)
  assert split.num_eval_examples == 287
  assert split.num_train_examples == 1437 - 287
  np.testing.assert_array_equal(split.eval_labels, source.train_labels[-287:])
  with pytest.raises(sources.DataError, match="empty train or eval split"):
    sources.with_validation_split(source, 0.0001)


def test_synthetic_shape_size_and_classes_are_configurable():
  source = sources.make_synthetic(num_examples=50, num_eval_examples=7,
                                  shape=(4, 3), num_classes=3, seed=1)
  assert source.train_features.shape == (50, 4, 3)
  assert source.eval_features.shape == (7, 4, 3)
  assert set(source.train_labels) <= {0, 1, 2}
  again = sources.make_synthetic(num_examples=50, num_eval_examples=7,
                                 shape=(4, 3), num_classes=3, seed=1)
  np.testing.assert_array_equal(source.train_features, again.train_features)


def test_synthetic_default_is_mnist_sized():
  config = config_lib.DataConfig(name="synthetic")
  source = sources.load_source(config)
  assert source.train_features.shape == (60_000, 28, 28, 1)
  assert source.num_classes == 10


def write_mnist(path, train=20, test=5):
  rng = np.random.default_rng(0)
  np.savez(path, x_train=rng.integers(0, 256, (train, 28, 28), np.uint8),
           y_train=rng.integers(0, 10, train), x_test=rng.integers(
               0, 256, (test, 28, 28), np.uint8),
           y_test=rng.integers(0, 10, test))


def test_mnist_from_data_dir_works_offline(tmp_path):
  write_mnist(tmp_path / "mnist.npz")
  source = sources.load_source(config_lib.DataConfig(
      name="mnist", data_dir=str(tmp_path)))
  assert source.input_shape == (28, 28, 1)
  assert source.num_train_examples == 20 and source.num_eval_examples == 5


def test_mnist_missing_or_corrupt_file_is_one_sentence(tmp_path):
  with pytest.raises(sources.DataError, match="holds no mnist.npz"):
    sources.load_mnist(str(tmp_path))
  (tmp_path / "mnist.npz").write_bytes(b"not a zip file")
  with pytest.raises(sources.DataError, match="not a readable MNIST archive"):
    sources.load_mnist(str(tmp_path))


def test_from_arrays_checks_lengths_and_shapes():
  x, y = np.zeros((5, 3)), np.zeros(5, np.int64)
  source = sources.from_arrays(x, y, x, y + 2)
  assert source.num_classes == 3 and source.train_labels.dtype == np.int32
  regression = sources.from_arrays(x, y + 0.5, x, y + 0.5)
  assert regression.num_classes == 1
  assert regression.train_labels.dtype == np.float32
  with pytest.raises(sources.DataError, match="labels have 4"):
    sources.from_arrays(x, y[:4], x, y)
  with pytest.raises(sources.DataError, match="eval features"):
    sources.from_arrays(x, y, np.zeros((5, 4)), y)


def test_unknown_dataset():
  config = dataclasses.replace(config_lib.DataConfig(), name="cifar")
  with pytest.raises(sources.DataError, match="unknown dataset 'cifar'"):
    sources.load_source(config)
