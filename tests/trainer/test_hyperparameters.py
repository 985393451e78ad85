"""`set_learning_rate` and `apply_hyperparameters` (trainer/optimizers.py)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_strategy
from trainer import build
from trainer import checkpointing
from trainer import config as config_lib
from trainer import optimizers


def _config(**changes):
  return config_lib.TrainConfig(
      model="mlp", optimizer="sgd", learning_rate=0.05, momentum=0.9,
      train_steps=100, model_dir="unused", **changes)


def _model(config, num_replicas=1):
  return build.build_model(config, make_strategy(num_replicas),
                           input_shape=(6,), num_classes=3)


def _roundtrip(model, tmp_path, name):
  """Saves `model`'s checkpoint and restores it into the same objects."""
  step = tf.Variable(7, dtype=tf.int64)
  checkpoint = checkpointing.build_checkpoint(model, step)
  path = checkpoint.save(str(tmp_path / name / "ckpt"))
  checkpoint.restore(path).assert_existing_objects_matched()
  return path


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_set_learning_rate_swaps_float_and_schedule_and_still_saves(
    tmp_path, num_replicas):
  model = _model(_config(), num_replicas)
  optimizer = model.optimizer
  optimizers.set_learning_rate(optimizer, 0.01)
  assert float(np.array(optimizer.learning_rate)) == pytest.approx(0.01)
  schedule = keras.optimizers.schedules.ExponentialDecay(0.2, 10, 0.5)
  optimizers.set_learning_rate(optimizer, schedule)
  assert not optimizers.has_rate_variable(optimizer)
  assert float(np.array(optimizer.learning_rate)) == pytest.approx(0.2)
  _roundtrip(model, tmp_path, "schedule")  # An in-place removal breaks this.
  optimizers.set_learning_rate(optimizer, 0.03)
  assert optimizers.has_rate_variable(optimizer)
  assert float(np.array(optimizer.learning_rate)) == pytest.approx(0.03)
  # A fresh float-rate optimizer's layout: the rate right after the count.
  assert optimizer.variables[1] is optimizer._learning_rate  # pylint: disable=protected-access
  _roundtrip(model, tmp_path, "float")


def test_a_checkpoint_of_one_rate_layout_restores_into_the_other(tmp_path):
  constant = _model(_config())
  path = _roundtrip(constant, tmp_path, "constant")
  scheduled = _model(_config(lr_schedule="step_decay", decay_steps=5,
                             decay_rate=0.5))
  step = tf.Variable(0, dtype=tf.int64)
  checkpointer = checkpointing.Checkpointer(
      checkpointing.build_checkpoint(scheduled, step), step,
      directory=str(tmp_path / "unused"), is_chief=False,
      optimizer=scheduled.optimizer)
  assert checkpointer.restore(path) == 7
  for got, want in zip(scheduled.get_weights(), constant.get_weights()):
    np.testing.assert_array_equal(got, want)
  assert not optimizers.has_rate_variable(scheduled.optimizer)


def test_apply_hyperparameters_puts_the_config_in_effect():
  config = _config()
  model = _model(config)
  changed = dataclasses.replace(config, learning_rate=0.2, momentum=0.5,
                                clip_norm=1.5, accumulate_steps=2)
  optimizers.apply_hyperparameters(model, changed)
  assert float(np.array(model.optimizer.learning_rate)) == pytest.approx(0.2)
  assert model.optimizer.momentum == 0.5
  assert model.clip_norm == 1.5 and model.accumulate_steps == 2
