"""`unscaled_loss`: the global-batch value of `compute_loss` in a replica."""

import keras
import numpy as np
import tensorflow as tf

from trainer.loss_tracking import unscaled_loss


def test_unscaled_loss_undoes_keras_scaling_on_any_replica_count(strategy):
  x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(8, 3)
  y = np.arange(8, dtype=np.int32) % 2
  with strategy.scope():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(
        2, kernel_initializer="ones",
        kernel_regularizer=keras.regularizers.L2(0.1))])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True))
  expected = float(model.compute_loss(y=y, y_pred=model(x)))  # No strategy.

  @tf.function
  def replica_losses():
    def step():  # Every replica gets the same batch: same loss.
      loss = model.compute_loss(y=y, y_pred=model(x))
      return loss, unscaled_loss(loss)
    return strategy.run(step)

  scaled, unscaled = replica_losses()
  replicas = strategy.num_replicas_in_sync
  for value in strategy.experimental_local_results(unscaled):
    np.testing.assert_allclose(float(value), expected, rtol=1e-6)
  for value in strategy.experimental_local_results(scaled):
    np.testing.assert_allclose(float(value) * replicas, expected, rtol=1e-6)
