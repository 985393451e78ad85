"""Losses and metrics by name, adapted to the harness's integer labels.

The pipelines yield integer class labels (or float targets for regression)
and the networks emit logits unless `from_logits` is False. Each loss here
returns one value per example (the step averages over the global batch);
each metric accepts `(labels, outputs, sample_weight)` and is a sync-on-read
Keras metric, so its cross-replica total is exact under any strategy.

Multi-class precision, recall and AUC follow Keras's definitions on one-hot
labels and class probabilities: every (example, class) decision counts, i.e.
micro-averaging; AUC is Keras's 200-threshold approximation.
"""

import keras
import tensorflow as tf

from trainer.config import LOSS_NAMES, METRIC_NAMES, REGRESSION_METRICS

CLASSIFICATION_LOSSES = ("sparse_categorical_crossentropy",
                         "categorical_crossentropy")


def output_units(loss: str, num_classes: int) -> int:
  """Units of the network's last layer for `loss`."""
  return num_classes if loss in CLASSIFICATION_LOSSES else 1


def output_activation(loss: str, from_logits: bool) -> str | None:
  """The last layer's activation: none for logits or regression."""
  if from_logits or loss == "mse":
    return None
  return "sigmoid" if loss == "binary_crossentropy" else "softmax"


def _probabilities(loss: str, from_logits: bool, outputs: tf.Tensor):
  outputs = tf.cast(outputs, tf.float32)
  if not from_logits or loss == "mse":
    return outputs
  if loss == "binary_crossentropy":
    return tf.sigmoid(outputs)
  return tf.nn.softmax(outputs)


def _class_indices(labels: tf.Tensor) -> tf.Tensor:
  """int32 class indices [batch] (labels of shape [batch, 1] too)."""
  labels = tf.cast(labels, tf.int32)
  if labels.shape.rank == 2 and labels.shape[-1] == 1:
    labels = labels[:, 0]  # one_hot would make [batch, 1, classes].
  return labels


def build_loss(name: str, *, from_logits: bool, num_classes: int):
  """Returns `loss(labels, outputs) -> per-example loss [batch]`.

  Raises:
    ValueError: If `name` is unknown.
  """
  if name == "sparse_categorical_crossentropy":
    keras_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=from_logits, reduction=None)
    return lambda labels, outputs: keras_loss(labels, tf.cast(outputs,
                                                              tf.float32))
  if name == "categorical_crossentropy":
    keras_loss = keras.losses.CategoricalCrossentropy(
        from_logits=from_logits, reduction=None)
    return lambda labels, outputs: keras_loss(
        tf.one_hot(_class_indices(labels), num_classes),
        tf.cast(outputs, tf.float32))
  if name == "binary_crossentropy":
    keras_loss = keras.losses.BinaryCrossentropy(from_logits=from_logits,
                                                 reduction=None)
    return lambda labels, outputs: keras_loss(
        tf.cast(tf.reshape(labels, [-1, 1]), tf.float32),
        tf.cast(outputs, tf.float32))
  if name == "mse":
    keras_loss = keras.losses.MeanSquaredError(reduction=None)
    return lambda labels, outputs: keras_loss(
        tf.cast(tf.reshape(labels, [-1, 1]), tf.float32),
        tf.cast(outputs, tf.float32))
  raise ValueError(f"unknown loss {name!r}; choose one of"
                   f" {', '.join(LOSS_NAMES)}.")


def _adapted(metric_class, convert):
  """A subclass of `metric_class` that converts its inputs first."""

  class Adapted(metric_class):

    def update_state(self, y_true, y_pred, sample_weight=None):
      y_true, y_pred = convert(y_true, y_pred)
      return super().update_state(y_true, y_pred, sample_weight=sample_weight)

  Adapted.__name__ = metric_class.__name__
  return Adapted


def build_metrics(names, *, loss: str, from_logits: bool,
                  num_classes: int,
                  output: str | None = None) -> list[keras.metrics.Metric]:
  """Returns fresh metrics; create them inside `strategy.scope()`.

  Args:
    names: Metric names from `METRIC_NAMES`.
    loss: The loss name, which fixes the label and output layout.
    from_logits: Whether the network emits logits.
    num_classes: Number of classes (for one-hot conversions).
    output: For a multi-output model: the key of the output (and label)
      the metrics read; they are named `<output>_<name>`.

  Raises:
    ValueError: If a name is unknown or does not fit the loss.
  """
  binary = loss == "binary_crossentropy"
  regression = loss == "mse"

  def as_probabilities(y_true, y_pred):
    probabilities = _probabilities(loss, from_logits, y_pred)
    if binary:
      return tf.reshape(tf.cast(y_true, tf.float32), [-1, 1]), probabilities
    return tf.one_hot(_class_indices(y_true), num_classes), probabilities

  def as_targets(y_true, y_pred):
    return (tf.reshape(tf.cast(y_true, tf.float32), [-1, 1]),
            tf.cast(y_pred, tf.float32))

  def as_classes(y_true, y_pred):
    return y_true, tf.cast(y_pred, tf.float32)

  metrics = []
  for name in names:
    if name not in METRIC_NAMES:
      raise ValueError(f"unknown metric {name!r}; choose from"
                       f" {', '.join(METRIC_NAMES)}.")
    if regression and name not in REGRESSION_METRICS:
      raise ValueError(f"metric {name!r} needs a classification loss, not"
                       " mse.")
    if name == "mae" and not regression:
      raise ValueError("metric 'mae' needs the loss mse (regression).")
    if name == "accuracy":
      if binary:
        metric_class = _adapted(keras.metrics.BinaryAccuracy, as_probabilities)
      else:
        metric_class = _adapted(keras.metrics.SparseCategoricalAccuracy,
                                as_classes)
    elif name == "precision":
      metric_class = _adapted(keras.metrics.Precision, as_probabilities)
    elif name == "recall":
      metric_class = _adapted(keras.metrics.Recall, as_probabilities)
    elif name == "auc":
      metric_class = _adapted(keras.metrics.AUC, as_probabilities)
    elif name == "mae":
      metric_class = _adapted(keras.metrics.MeanAbsoluteError, as_targets)
    else:  # mse: of the targets, or of the probabilities (Brier score).
      metric_class = _adapted(keras.metrics.MeanSquaredError,
                              as_targets if regression else as_probabilities)
    if output is not None:
      metric_class = _adapted(metric_class, lambda y_true, y_pred, key=output:
                              (y_true[key], y_pred[key]))
    metrics.append(metric_class(name=name if output is None
                                else f"{output}_{name}"))
  return metrics
