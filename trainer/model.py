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

from trainer import optimizers


class Model(keras.Model):
  """A trainable wrapper around a network with the harness's step contract.

  Subclass it and override `train_step`/`test_step` to customise a step, or
  override `call` (and pass no network) to define the layers yourself.

  Attributes:
    network: The wrapped `keras.Model` (what gets exported), or None.
    loss_fn: Per-example loss: `loss_fn(y, y_pred)` returns shape [batch].
    loss_tracker: Mean of the per-example loss (plus regularization).
    clip_norm: If > 0, the optimizer clips the all-reduced gradient.
    accumulate_steps: Micro-batches per replica batch in `train_step`.
  """

  def __init__(self, network: keras.Model | None = None, *,
               loss=None, metrics: Sequence[keras.metrics.Metric] = (),
               clip_norm: float = 0.0, accumulate_steps: int = 1, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.loss_fn = loss or keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None)
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.compiled_metric_list = list(metrics)
    self.clip_norm = clip_norm
    self.accumulate_steps = accumulate_steps

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
      regularization_loss: tf.Tensor | None = None,
      global_batch_size: tf.Tensor | int | None = None) -> tf.Tensor:
    """The loss to differentiate: global-batch mean plus scaled regularization.

    Args:
      per_example_loss: Shape [per-replica batch].
      sample_weight: Optional weights of the same shape.
      regularization_loss: The model's regularization loss, taken once per
        step (it is added on every replica, hence divided by the replicas).
      global_batch_size: The divisor; by default this batch's size times the
        number of replicas.

    Returns:
      A scalar whose gradients, summed over replicas, are the gradients of
      the global-batch mean loss plus the regularization.
    """
    loss = tf.nn.compute_average_loss(per_example_loss,
                                      sample_weight=sample_weight,
                                      global_batch_size=global_batch_size)
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
    logged_loss = tf.cast(per_example_loss, tf.float32)
    if regularization_loss is not None:
      logged_loss = logged_loss + regularization_loss
    self.loss_tracker.update_state(logged_loss, sample_weight=sample_weight)
    for metric in self.compiled_metric_list:
      metric.update_state(y, y_pred, sample_weight=sample_weight)
    return {metric.name: metric.result() for metric in self.metrics}

  def apply_gradients(self, gradients: list) -> None:
    """Applies local gradients: summed over replicas, clipped, agreed.

    Call it with the gradients of `self.optimizer.scale_loss(loss)`; the
    optimizer unscales them when it is a LossScaleOptimizer.

    The optimizer (prepared by `optimizers.prepare_for_replicas`, which the
    harness does when it attaches it) all-reduces the gradients once, clips
    the sum (the global batch's gradient) to `clip_norm`, and under loss
    scaling makes all replicas skip an overflowing step together.
    `self.optimizer.apply_gradients` does the same.
    """
    optimizers.prepare_for_replicas(self.optimizer, clip_norm=self.clip_norm)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if self.accumulate_steps > 1:
      return self._accumulating_train_step(x, y, sample_weight)
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      per_example_loss = self.loss_fn(y, y_pred)
      regularization_loss = self.regularization_loss()
      loss = self.compute_average_loss(per_example_loss, sample_weight,
                                       regularization_loss)
      # A no-op unless the optimizer is a LossScaleOptimizer (mixed_float16).
      scaled_loss = self.optimizer.scale_loss(loss)
    self.apply_gradients(tape.gradient(scaled_loss, self.trainable_variables))
    return self.update_metrics(y, y_pred, per_example_loss, sample_weight,
                               regularization_loss)

  def _accumulating_train_step(self, x, y, sample_weight):
    """Sums the gradients of `accumulate_steps` micro-batches, then applies.

    Each micro-batch loss is divided by the FULL global batch, and the
    regularization is split evenly over the micro-batches, so the summed
    gradient equals that of one step on the whole batch.
    """
    steps = self.accumulate_steps
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    global_batch_size = tf.shape(tf.nest.flatten(y)[0])[0] * replicas

    def split(structure):  # A list of `steps` structures of micro-batches.
      if structure is None:
        return None
      pieces = [tf.split(t, steps) for t in tf.nest.flatten(structure)]
      return [tf.nest.pack_sequence_as(structure, [p[i] for p in pieces])
              for i in range(steps)]

    xs, ys, weights = split(x), split(y), split(sample_weight)
    total = None
    for index in range(steps):
      weight = None if weights is None else weights[index]
      with tf.GradientTape() as tape:
        y_pred = self(xs[index], training=True)
        per_example_loss = self.loss_fn(ys[index], y_pred)
        regularization_loss = self.regularization_loss()
        loss = self.compute_average_loss(
            per_example_loss, weight, regularization_loss / steps,
            global_batch_size=global_batch_size)
        scaled_loss = self.optimizer.scale_loss(loss)
      gradients = tape.gradient(scaled_loss, self.trainable_variables)
      total = gradients if total is None else [
          a + g for a, g in zip(total, gradients)]
      logs = self.update_metrics(ys[index], y_pred, per_example_loss, weight,
                                 regularization_loss)
    self.apply_gradients(total)
    return logs

  def test_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = self(x, training=False)
    per_example_loss = self.loss_fn(y, y_pred)
    return self.update_metrics(y, y_pred, per_example_loss, sample_weight,
                               self.regularization_loss())
