"""The loop's callbacks: the base `Callback` and the built-in ones.

A callback sees `(step, logs)` after every train loop and every evaluation
and may ask training to stop early by returning True. Every worker computes
the same all-reduced logs, so every worker takes the same decision.

The built-ins do what Keras's callbacks of the same names do (early
stopping, plateau, best checkpoint, the optimizer's final values). Your own
subclass `Callback` and go into the same `callbacks` list as Keras
callbacks (`launch.fit(callbacks=[...])`, `launch.main.run(callbacks=[...])`);
`trainer.keras_callbacks` adapts Keras's to these boundaries.
"""

import math

from absl import logging
import numpy as np

_HIGHER_IS_BETTER = ("accuracy", "auc", "precision", "recall")


class Callback:
  """Base class of the loop's callbacks: override any method; return True
  to stop training."""

  def on_train_begin(self, step: int) -> None:
    """Before the first loop (`step` is the restored step)."""
    del step

  def on_train_loop_begin(self, step: int) -> None:
    del step

  def on_boundary(self, step: int) -> bool | None:
    """At an evaluation boundary of a run without eval data."""
    del step

  def on_train_end(self, step: int, logs: dict) -> bool | None:
    """After the final checkpoint and evaluation (`logs`; empty without
    eval data). Return True if this changed the model's weights (restored
    the best ones): the controller then saves and evaluates them again."""
    del step, logs

  def on_train_loop_end(self, step: int, logs: dict) -> bool | None:
    del step, logs

  def on_eval_end(self, step: int, logs: dict) -> bool | None:
    del step, logs

  def on_rollback(self, step: int) -> None:
    """A non-finite loss rolled training back to the checkpoint of `step`
    (`nan_retries`); the next loop starts there."""
    del step


class DivergenceWarning(Callback):
  """Warns at the end when the training loss ended far above its start.

  "Far above": the last loop's loss is more than `ratio` times where it
  began, which is the first loop's loss or, for a classifier trained with
  cross-entropy, the loss of a uniform guess if that is lower (a loss that
  exploded within the first loop is far above both). Losses that are zero
  or negative at either end are never compared. A classifier whose first
  loop exploded (more than `ratio` times a uniform guess) and that ends no
  better than a uniform guess is warned about too: it collapsed to chance.
  """

  def __init__(self, *, chance_loss: float | None = None,
               ratio: float = 2.0):
    self._chance_loss = chance_loss
    self._ratio = ratio
    self._first = None
    self._last = None

  def on_train_loop_end(self, step, logs):
    loss = logs.get("loss")
    if loss is not None and math.isfinite(loss):
      if self._first is None:
        self._first = (step, loss)
      self._last = (step, loss)
    return False

  def on_train_end(self, step, logs):
    del step, logs
    if self._first is None or self._last is self._first:
      return False
    (first_step, first), (last_step, last) = self._first, self._last
    began = first if self._chance_loss is None else min(first,
                                                         self._chance_loss)
    collapsed = (self._chance_loss is not None
                 and first > self._ratio * self._chance_loss
                 and last >= self._chance_loss)
    if collapsed and not last > self._ratio * began:
      logging.warning(
          "the training loss exploded in the first loop (%.4g by step %d)"
          " and ended at %.4g (step %d), no better than the %.4g of a"
          " uniform guess: the training diverged; lower the learning rate.",
          first, first_step, last, last_step, self._chance_loss)
    elif began > 0 and last > self._ratio * began:
      reference = (f"the first loop's {first:.4g} (step {first_step})"
                   if began == first else
                   f"the {began:.4g} of a uniform guess")
      logging.warning(
          "the training loss ended at %.4g (step %d), far above %s: the"
          " training diverged; lower the learning rate.", last, last_step,
          reference)
    return False


class _Monitor:
  """Tracks the best value of one eval metric."""

  def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
    if mode == "auto":
      mode = "max" if monitor in _HIGHER_IS_BETTER else "min"
    if mode not in ("min", "max"):
      raise ValueError(f"mode must be min, max or auto, not {mode!r}.")
    self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
    self.best = math.inf if mode == "min" else -math.inf
    self.evals_since_best = 0

  def update(self, logs: dict) -> bool:
    """Records `logs`; returns whether the monitored value improved."""
    if self.monitor not in logs:
      raise KeyError(f"the monitored metric {self.monitor!r} is not in the"
                     f" eval logs ({', '.join(logs)}).")
    value = logs[self.monitor]
    improved = (value < self.best - self.min_delta if self.mode == "min"
                else value > self.best + self.min_delta)
    if improved:
      self.best, self.evals_since_best = value, 0
    else:
      self.evals_since_best += 1
    return improved


class EarlyStopping(Callback):
  """Stops after `patience` evaluations without improvement.

  With `restore_best_weights`, an early stop ends training with the weights
  of the best evaluation: the final checkpoint, the final evaluation and
  the export then hold them (see `on_train_end`).
  """

  def __init__(self, *, model, monitor: str = "loss", mode: str = "auto",
               patience: int = 3, min_delta: float = 0.0,
               restore_best_weights: bool = False):
    self._model = model
    self._monitor = _Monitor(monitor, mode, min_delta)
    self._patience = patience
    self._restore = restore_best_weights
    self._best_weights = None
    self._best_step = None
    self.stopped_at = None

  def on_eval_end(self, step, logs):
    if self.stopped_at is not None:  # The evaluation after a stop.
      return True
    if self._monitor.update(logs):
      if self._restore:  # A host copy, once per improving evaluation.
        self._best_weights = [np.array(w) for w in self._model.get_weights()]
        self._best_step = step
      return False
    if self._monitor.evals_since_best < self._patience:
      return False
    self.stopped_at = step
    logging.info("Early stopping at step %d: %s has not improved on %.4f for"
                 " %d evaluations.", step, self._monitor.monitor,
                 self._monitor.best, self._patience)
    return True

  def on_train_end(self, step, logs):
    """After an early stop, restores the best weights (True: it did)."""
    del step, logs
    if self.stopped_at is None or self._best_weights is None:
      return False
    self._model.set_weights(self._best_weights)
    logging.info("Restored the weights of the best evaluation (step %d).",
                 self._best_step)
    return True


class ReduceLROnPlateau(Callback):
  """Multiplies the learning rate by `factor` after a plateau."""

  def __init__(self, *, optimizer, monitor: str = "loss", mode: str = "auto",
               factor: float = 0.5, patience: int = 2, min_lr: float = 0.0):
    self._optimizer = optimizer
    self._monitor = _Monitor(monitor, mode)
    self._factor, self._patience, self._min_lr = factor, patience, min_lr

  def on_eval_end(self, step, logs):
    if self._monitor.update(logs) or (
        self._monitor.evals_since_best < self._patience):
      return False
    old = float(np.array(self._optimizer.learning_rate))
    new = max(old * self._factor, self._min_lr)
    if new < old:
      self._optimizer.learning_rate.assign(new)
      logging.info("Step %d: %s plateaued; learning rate %.3g -> %.3g.", step,
                   self._monitor.monitor, old, new)
    self._monitor.evals_since_best = 0
    return False


class BestCheckpoint(Callback):
  """Saves a checkpoint whenever the monitored eval metric improves."""

  def __init__(self, *, checkpointer, monitor: str = "loss",
               mode: str = "auto"):
    self._checkpointer = checkpointer
    self._monitor = _Monitor(monitor, mode)

  def on_eval_end(self, step, logs):
    if self._monitor.update(logs):
      self._checkpointer.save(step)
    return False


class FinalizeWeights(Callback):
  """At the end of training, the optimizer's final values, as Keras's `fit`.

  An optimizer with `use_ema=True` then puts its moving averages into the
  model's weights (before the callbacks' `on_train_end`, as in Keras), so
  the final checkpoint, the export and the final evaluation hold them.
  """

  def __init__(self, *, model):
    self._model = model

  def on_train_end(self, step, logs):
    del step, logs
    optimizer = self._model.optimizer
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not getattr(inner, "use_ema", False):
      return False
    optimizer.finalize_variable_values(self._model.trainable_variables)
    logging.info("The optimizer's moving averages (use_ema) are the final"
                 " weights, as in Keras's fit.")
    return True
