"""Models with several named outputs: per-output losses, weights, metrics.

Labels and network outputs are dicts with the same keys. The loss is
`sum_k weight_k * loss_k(y[k], y_pred[k])` per example (Keras's
`loss_weights`); the logs hold that total as `loss`, each output's own mean
loss as `<output>_loss` and each metric per output as `<output>_<metric>`.
All are Keras metrics, hence exact across replicas like single-output ones.
"""

from collections.abc import Sequence

import keras
import tensorflow as tf

from trainer import objectives
from trainer.config import REGRESSION_METRICS


def build_loss(output_losses: Sequence[tuple[str, str]],
               loss_weights: Sequence[tuple[str, float]], *, from_logits: bool,
               num_classes: dict[str, int]):
  """Returns `loss(y, y_pred) -> weighted per-example loss [batch]`."""
  weights = dict(loss_weights)
  losses = {name: objectives.build_loss(loss, from_logits=from_logits,
                                        num_classes=num_classes[name])
            for name, loss in output_losses}

  def loss_fn(y, y_pred):
    return tf.add_n([weights.get(name, 1.0) * fn(y[name], y_pred[name])
                     for name, fn in losses.items()])

  return loss_fn


class OutputLoss(keras.metrics.Mean):
  """The mean per-example loss of one output."""

  def __init__(self, output: str, loss_fn, **kwargs):
    super().__init__(name=f"{output}_loss", **kwargs)
    self._output = output
    self._loss_fn = loss_fn

  def update_state(self, y_true, y_pred, sample_weight=None):
    return super().update_state(
        self._loss_fn(y_true[self._output], y_pred[self._output]),
        sample_weight=sample_weight)


def build_metrics(names: Sequence[str],
                  output_losses: Sequence[tuple[str, str]], *,
                  from_logits: bool, num_classes: dict[str, int]
                  ) -> list[keras.metrics.Metric]:
  """Per output: its loss, then each metric that fits its loss.

  Metrics that need a classification loss are skipped on regression (mse)
  outputs, and `mae` and `mse` only apply to them there.
  """
  metrics = []
  for output, loss in output_losses:
    metrics.append(OutputLoss(output, objectives.build_loss(
        loss, from_logits=from_logits, num_classes=num_classes[output])))
    usable = [name for name in names
              if (loss == "mse") == (name in REGRESSION_METRICS)]
    metrics += objectives.build_metrics(
        usable, loss=loss, from_logits=from_logits,
        num_classes=num_classes[output], output=output)
  return metrics
