import pytest
import tensorflow as tf

from tests import training
from trainer import model as model_lib

def train_weights(num_replicas, *, steps=20, optimizer="sgd", l2=1e-3,
                  model_class=None):
  result = training.train(
      num_replicas, steps=steps, optimizer=optimizer, l2=l2,
      learning_rate=0.05 if optimizer == "sgd" else 1e-3,
      model_class=model_class)
  return result.weights, result.logs, result.model


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
