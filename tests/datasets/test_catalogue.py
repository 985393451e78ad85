"""The built-in datasets: splits, scaling and the mnist.npz rules."""

import numpy as np
import pytest

from datasets import DataError
from datasets import catalogue
from datasets.config import DataConfig
from tests.datasets.helpers import global_steps


def test_digits_has_a_fixed_documented_split():
  train, held_out = catalogue.load(DataConfig(name="digits"))
  again = catalogue.load(DataConfig(name="digits"))[1]
  assert (train.num_examples, held_out.num_examples) == (1437, 360)
  assert train.input_shape == (8, 8, 1) and train.num_classes == 10
  assert "scaled by 1/16" in train.description
  np.testing.assert_array_equal(held_out.data.labels, again.data.labels)
  assert (train.data.features.max() * train.feature_scale) == 1.0


def test_validation_split_takes_the_last_training_examples():
  full, _ = catalogue.load(DataConfig(name="digits"))
  train, held_out = catalogue.load(DataConfig(name="digits",
                                              validation_split=0.2))
  assert (train.num_examples, held_out.num_examples) == (1150, 287)
  np.testing.assert_array_equal(held_out.data.labels, full.data.labels[-287:])
  with pytest.raises(DataError, match="empty train or eval part"):
    catalogue.load(DataConfig(name="digits", validation_split=0.0001))


@pytest.mark.parametrize("name,shape,classes", [
    ("digits_halves", {"input_1": (32,), "input_2": (32,)}, 2),
    ("digits_two_targets", (8, 8, 1), {"digit": 10, "large": 2}),
    ("sequences", (16, 1), 4)])
def test_variants(name, shape, classes):
  train, held_out = catalogue.load(DataConfig(name=name))
  assert train.input_shape == held_out.input_shape == shape
  assert train.num_classes == held_out.num_classes == classes


def test_synthetic_is_configurable_and_seeded():
  config = DataConfig(name="synthetic", synthetic_examples=50,
                      synthetic_eval_examples=7, synthetic_shape=(4, 3),
                      num_classes=3, seed=1)
  train, held_out = catalogue.load(config)
  assert train.input_shape == (4, 3) and held_out.num_examples == 7
  assert train.num_classes == 3 and "1/255" in train.description
  np.testing.assert_array_equal(train.data.features,
                                catalogue.load(config)[0].data.features)


def write_mnist(path, dtype=np.uint8, train=20, test=5):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (train + test, 28, 28)).astype(dtype)
  if dtype != np.uint8:
    x = x / 255  # A user saved pre-scaled data.
  np.savez(path, x_train=x[:train], y_train=rng.integers(0, 10, train),
           x_test=x[train:], y_test=rng.integers(0, 10, test))


def test_mnist_uint8_is_scaled_once(tmp_path):
  write_mnist(tmp_path / "mnist.npz")
  train, held_out = catalogue.load(DataConfig(name="mnist",
                                              data_dir=str(tmp_path)))
  assert train.input_shape == (28, 28, 1) and held_out.num_examples == 5
  assert "scaled by 1/255" in train.description
  x, _ = global_steps(train, 1, global_batch_size=20)[0]
  assert x.max() <= 1.0 and x.max() > 0.9


def test_mnist_float_arrays_are_not_scaled_again(tmp_path):
  write_mnist(tmp_path / "mnist.npz", dtype=np.float64)
  train, _ = catalogue.load(DataConfig(name="mnist", data_dir=str(tmp_path)))
  assert "not rescaled" in train.description
  x, _ = global_steps(train, 1, global_batch_size=20)[0]
  assert x.max() > 0.9  # Divided by 255 again it would be below 0.004.


def test_mnist_missing_or_corrupt_file_is_one_sentence(tmp_path):
  config = DataConfig(name="mnist", data_dir=str(tmp_path))
  with pytest.raises(DataError, match="holds no mnist.npz"):
    catalogue.load(config)
  (tmp_path / "mnist.npz").write_bytes(b"not a zip file")
  with pytest.raises(DataError, match="not a readable MNIST archive"):
    catalogue.load(config)


def test_unknown_dataset():
  with pytest.raises(DataError, match="unknown dataset 'cifar'"):
    catalogue.load(DataConfig(name="cifar"))
