"""`Model`: a `keras.Model` whose `train_step`/`test_step` the harness drives.

The contract is Keras's (`train_step(self, data)` as in `keras.Model.fit`),
with the distribution rules made explicit:

* `data` is one per-replica batch: `(x, y)` in training, `(x, y,
  sample_weight)` in evaluation, where padded eval rows have weight 0.
* Losses that are differentiated are averaged over the GLOBAL batch
  (`compute_average_loss`), because the optimizer SUMS gradients over
  replicas.
* Metric state lives in `self.metrics` (Keras metrics are sync-on-read, so
  the harness reads their cross-replica totals at loop boundaries). The
  returned dict is informational; the logs are `self.metrics`' results.

The harness owns `strategy.run`, `tf.function` and the loop; a `train_step`
never sees the strategy.
"""

from collections.abc import Sequence

import keras
import tensorflow as tf


class Model(keras.Model):
  """A trainable wrapper around a network with the harness's step contract.

  Subclass it and override `train_step`/`test_step` to customise a step, or
  override `call` (and pass no network) to define the layers yourself.

  Attributes:
    network: The wrapped `keras.Model` (what gets exported), or None.
    loss_fn: Per-example loss: `loss_fn(y, y_pred)` returns shape [batch].
    loss_tracker: Mean of the per-example loss (plus regularization).
  """

  def __init__(self, network: keras.Model | None = None, *,
               loss: keras.losses.Loss | None = None,
               metrics: Sequence[keras.metrics.Metric] = (), **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.loss_fn = loss or keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None)
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.compiled_metric_list = list(metrics)

  def call(self, inputs, training=None):
    return self.network(inputs, training=training)

  @property
  def metrics(self) -> list[keras.metrics.Metric]:
    return [self.loss_tracker, *self.compiled_metric_list]

  def regularization_loss(self) -> tf.Tensor:
    """Sum of the layers' regularization losses at the current weights."""
    losses = self.losses
    return tf.add_n(losses) if losses else tf.constant(0.0)

  def compute_average_loss(
      self, per_example_loss: tf.Tensor, sample_weight: tf.Tensor | None = None,
      regularization_loss: tf.Tensor | None = None) -> tf.Tensor:
    """The loss to differentiate: global-batch mean plus scaled regularization.

    Args:
      per_example_loss: Shape [per-replica batch].
      sample_weight: Optional weights of the same shape.
      regularization_loss: The model's regularization loss, taken once per
        step (it is added on every replica, hence divided by the replicas).

    Returns:
      A scalar whose gradients, summed over replicas, are the gradients of
      the global-batch mean loss plus the regularization.
    """
    loss = tf.nn.compute_average_loss(per_example_loss,
                                      sample_weight=sample_weight)
    if regularization_loss is not None:
      loss += tf.nn.scale_regularization_loss(regularization_loss)
    return loss

  def update_metrics(self, y, y_pred, per_example_loss: tf.Tensor,
                     sample_weight: tf.Tensor | None = None,
                     regularization_loss: tf.Tensor | None = None) -> dict:
    """Updates `self.metrics` with one batch and returns the local results.

    The logged loss is the mean per-example loss plus the regularization, as
    in `keras.Model.fit`.
    """
    logged_loss = per_example_loss
    if regularization_loss is not None:
      logged_loss = logged_loss + regularization_loss
    self.loss_tracker.update_state(logged_loss, sample_weight=sample_weight)
    for metric in self.compiled_metric_list:
      metric.update_state(y, y_pred, sample_weight=sample_weight)
    return {metric.name: metric.result() for metric in self.metrics}

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      per_example_loss = self.loss_fn(y, y_pred)
      regularization_loss = self.regularization_loss()
      loss = self.compute_average_loss(per_example_loss, sample_weight,
                                       regularization_loss)
    gradients = tape.gradient(loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
    return self.update_metrics(y, y_pred, per_example_loss, sample_weight,
                               regularization_loss)

  def test_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = self(x, training=False)
    per_example_loss = self.loss_fn(y, y_pred)
    return self.update_metrics(y, y_pred, per_example_loss, sample_weight,
                               self.regularization_loss())
