"""from_arrays: labels, classes, scaling, named inputs/outputs, errors."""

import numpy as np
import pytest

from datasets import DataError, from_arrays
from tests.datasets.helpers import global_steps


def test_integer_labels_are_classes_and_uint8_is_scaled_and_said():
  x = np.full((6, 4, 4, 1), 255, np.uint8)
  source = from_arrays(x, np.array([0, 2, 1, 0, 2, 2], np.int64))
  assert source.num_classes == 3 and source.num_examples == 6
  assert source.input_shape == (4, 4, 1)
  assert "scaled by 1/255" in source.description
  assert "6 examples of 4x4x1 uint8" in source.description
  assert source.feature_scale == 1 / 255 and source.standardization is None
  (features, labels), = global_steps(source, 1, global_batch_size=2)
  assert features.dtype == np.float32 and labels.dtype == np.int32
  np.testing.assert_allclose(features, 1.0)


def test_scale_one_keeps_uint8_and_floats_are_never_rescaled():
  x = np.full((4, 3), 200, np.uint8)
  kept = from_arrays(x, np.zeros(4, int), scale=1.0)
  assert "not rescaled" in kept.description
  np.testing.assert_allclose(global_steps(kept, 1, global_batch_size=2)[0][0],
                             200.0)
  floats = from_arrays(x.astype(np.float32), np.zeros(4, int))
  assert "not rescaled" in floats.description
  np.testing.assert_allclose(
      global_steps(floats, 1, global_batch_size=2)[0][0], 200.0)
  halved = from_arrays(x, np.zeros(4, int), scale=0.5)
  assert "scaled by 1/2" in halved.description


def test_float_labels_regression_and_one_hot():
  x = np.zeros((5, 3), np.float32)
  regression = from_arrays(x, np.linspace(0, 1, 5))
  assert regression.num_classes == 1
  one_hot = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 1]]
  source = from_arrays(x, one_hot)
  assert source.num_classes == 4
  (_, labels), = global_steps(source, 1, global_batch_size=5)
  assert labels.dtype == np.float32 and labels.shape == (5, 4)
  assert sorted(map(tuple, labels)) == sorted(map(tuple, one_hot))


def test_named_inputs_and_outputs():
  x = {"a": np.zeros((6, 2), np.float32), "b": np.ones((6, 3), np.uint8)}
  y = {"digit": np.arange(6) % 3, "large": np.arange(6) >= 3}
  source = from_arrays(x, y)
  assert source.input_shape == {"a": (2,), "b": (3,)}
  assert source.num_classes == {"digit": 3, "large": 2}
  (features, labels), = global_steps(source, 1, global_batch_size=2)
  assert set(features) == {"a", "b"} and features["b"].max() == 1 / 255
  assert labels["large"].dtype == np.int32


def test_tabular_standardization_is_of_the_training_split():
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 2.0, (50, 4)).astype(np.float32)
  source = from_arrays(x, np.zeros(50, int))
  mean, variance = source.standardization
  assert mean.dtype == np.float32 and mean.shape == (4,)
  np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-6)
  train, held_out = source.split(0.2)
  np.testing.assert_allclose(train.standardization[0],
                             x[:40].astype(np.float64).mean(0), rtol=1e-6)
  assert held_out.standardization is train.standardization


def test_split_takes_the_last_examples():
  source = from_arrays(np.arange(10.0)[:, None], np.arange(10))
  train, held_out = source.split(0.3)
  assert (train.num_examples, held_out.num_examples) == (7, 3)
  assert train.num_classes == held_out.num_classes == 10
  steps = global_steps(held_out, 1, global_batch_size=3)
  assert sorted(steps[0][1].tolist()) == [7, 8, 9]
  assert held_out.description.startswith(
      "3 held-out examples (3 of 10 classes) from 10 examples of")
  assert "the last 3 rows, before shuffling, as Keras's fit" in (
      held_out.description)
  # One example per class: each part lacks some classes, and says so.
  assert len(held_out.warnings) == 2 and held_out.warnings == train.warnings
  assert ("leaves 3 of 10 classes out of the training part (class 7 (1"
          " example), class 8 (1 example), class 9") in train.warnings[1]
  with pytest.raises(DataError, match="empty train or eval part"):
    source.split(0.01)


def test_bad_arrays_are_one_sentence():
  x = np.zeros((5, 3))
  with pytest.raises(DataError, match=r"same number of rows.*\[4, 5\]"):
    from_arrays(x, np.zeros(4))
  with pytest.raises(DataError, match="same number of rows"):
    from_arrays({"a": x, "b": x[:3]}, np.zeros(5))
  with pytest.raises(DataError, match="no examples"):
    from_arrays(x[:0], np.zeros(0))
  with pytest.raises(DataError, match="not numbers"):
    from_arrays(np.array([["a"]] * 5), np.zeros(5))
  with pytest.raises(DataError, match="class indices from 0"):
    from_arrays(x, -np.ones(5, int))


def test_task_overrides_the_dtype_rule():
  from datasets import DataError, from_arrays
  x = np.zeros((4, 2), np.float32)
  assert from_arrays(x, np.array([0, 1, 2, 1])).task == "classification"
  floats = from_arrays(x, np.array([0.5, 1.0, 2.0, 3.0]))
  assert floats.task == "regression" and "regression targets" in (
      floats.description)
  counts = from_arrays(x, np.array([3, 1, 2, 1]), task="regression")
  assert counts.task == "regression" and counts.num_classes == 1
  assert counts.data.labels.dtype == np.float32
  whole = from_arrays(x, np.array([0.0, 1.0, 2.0, 1.0]),
                      task="classification", class_names=["a", "b", "c"])
  assert whole.num_classes == 3 and whole.data.labels.dtype == np.int32
  assert "3 classes (a, b, c)" in whole.description
  with pytest.raises(DataError, match="float labels have fractions"):
    from_arrays(x, np.array([0.5, 1.0, 2.0, 3.0]), task="classification")
  with pytest.raises(DataError, match="one is -1; renumber them, or give"):
    from_arrays(x, np.array([-1, 1, -1, 1]))
  with pytest.raises(DataError, match="class_names names 2 classes"):
    from_arrays(x, np.array([0, 1, 2, 1]), class_names=["a", "b"])
