import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import pipeline
from datasets import sources
from tests.conftest import make_strategy
from trainer import build
from trainer import config as config_lib
from trainer import model as model_lib
from trainer import runner as runner_lib

GLOBAL_BATCH = 32


def train_weights(num_replicas, *, steps=20, optimizer="sgd", l2=1e-3,
                  model_class=None):
  """Trains the digits MLP for `steps` steps; returns weights and logs."""
  source = sources.load_digits()
  strategy = make_strategy(num_replicas)
  keras.utils.set_random_seed(1)
  config = config_lib.TrainConfig(optimizer=optimizer, l2=l2,
                                  learning_rate=0.05 if optimizer == "sgd"
                                  else 1e-3)
  model = build.build_model(config, strategy, input_shape=source.input_shape,
                            num_classes=source.num_classes)
  if model_class is not None:  # Same network, user's step.
    with strategy.scope():
      custom = model_class(model.network, metrics=model.compiled_metric_list)
      custom.optimizer = model.optimizer
    model = custom
  runner = runner_lib.Runner(
      strategy=strategy, model=model,
      train_dataset_fn=pipeline.create_train_dataset_fn(
          source.train_features, source.train_labels,
          global_batch_size=GLOBAL_BATCH, seed=0,
          feature_scale=source.feature_scale))
  logs = runner.train(steps)
  return [w.numpy() for w in model.network.weights], logs, model


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("num_replicas", [2, 4])
def test_replicas_train_like_one_device(optimizer, num_replicas):
  reference, reference_logs, _ = train_weights(1, optimizer=optimizer)
  weights, logs, _ = train_weights(num_replicas, optimizer=optimizer)
  for expected, actual in zip(reference, weights):
    np.testing.assert_allclose(actual, expected, atol=1e-5)
  assert logs["loss"] == pytest.approx(reference_logs["loss"], abs=1e-5)
  assert logs["accuracy"] == pytest.approx(reference_logs["accuracy"])


def test_training_reduces_the_loss():
  _, early, _ = train_weights(2, steps=5)
  _, late, _ = train_weights(2, steps=200)
  assert late["loss"] < early["loss"] * 0.5
  assert late["learning_rate"] == pytest.approx(0.05)


class SignFlipModel(model_lib.Model):
  """A user step: ascends instead of descending, and counts its calls."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.calls = tf.Variable(0, trainable=False, dtype=tf.int64,
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def train_step(self, data):
    x, y = data
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      per_example_loss = self.loss_fn(y, y_pred)
      loss = -self.compute_average_loss(per_example_loss)
    gradients = tape.gradient(loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
    self.calls.assign_add(1)
    return self.update_metrics(y, y_pred, per_example_loss)


def test_user_train_step_override_is_what_runs():
  _, normal, _ = train_weights(2, steps=50)
  _, flipped, model = train_weights(2, steps=50, model_class=SignFlipModel)
  assert int(model.calls.numpy()) == 50
  assert flipped["loss"] > normal["loss"] * 2


def test_regularization_is_in_the_logged_loss():
  _, with_l2, model = train_weights(1, steps=1, l2=10.0)
  _, without, _ = train_weights(1, steps=1, l2=0.0)
  assert with_l2["loss"] > without["loss"] + 1.0
  assert model.losses
