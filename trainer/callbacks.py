"""Keras callbacks (`keras.callbacks.Callback`) driven by the harness's loop.

The harness runs many steps per compiled call, so the callback events map
onto its boundaries:

* `on_train_begin` / `on_train_end`: once per run (per `fit` call).
* `on_epoch_begin(epoch)` / `on_epoch_end(epoch, logs)`: an "epoch" is the
  stretch between two evaluations (`eval_every` steps; with `epochs`, one
  pass over the data). `logs` holds the train metrics averaged over the
  loops of the epoch (weighted by steps; `summaries.EpochMeans`, as in
  metrics.csv), the latest learning rate, and the eval metrics prefixed
  `val_`, as in `keras.Model.fit`; without eval data, the train metrics.
* `on_train_batch_begin/end(step, logs)`: at the start/end of every loop of
  `steps_per_loop` steps, with that loop's metrics.

Setting `model.stop_training = True` ends training after a checkpoint.
Every worker computes the same all-reduced logs, so deterministic callbacks
decide alike; the stop is also agreed between workers. Callbacks that write
files (CSVLogger, ModelCheckpoint, TensorBoard, BackupAndRestore) run on the
chief only, so workers never write the same file.
"""

from collections.abc import Callable, Sequence

import keras

from trainer import actions
from trainer import summaries

_FILE_WRITERS = (keras.callbacks.CSVLogger, keras.callbacks.ModelCheckpoint,
                 keras.callbacks.TensorBoard, keras.callbacks.BackupAndRestore)


class KerasCallbacks(actions.Action):
  """Adapts a list of Keras callbacks to the controller's actions."""

  def __init__(self, callbacks: Sequence[keras.callbacks.Callback], *,
               model: keras.Model, is_chief: bool, steps_per_epoch: int,
               train_steps: int, agree: Callable[[bool], bool] = bool):
    """Initializes the adapter.

    Args:
      callbacks: The user's callbacks.
      model: What the callbacks see as `self.model`.
      is_chief: Whether this worker writes files.
      steps_per_epoch: Steps between two evaluations (the run's "epoch").
      train_steps: The final step.
      agree: `agree(flag)` is True on every worker if it is on any.
    """
    kept = [callback for callback in callbacks
            if is_chief or not isinstance(callback, _FILE_WRITERS)]
    self._model = model
    self._steps_per_epoch = max(1, steps_per_epoch)
    self._list = keras.callbacks.CallbackList(
        kept, add_history=False, add_progbar=False, model=model,
        epochs=-(-train_steps // self._steps_per_epoch),
        steps=self._steps_per_epoch, verbose=0)
    self._agree = agree
    self._means = summaries.EpochMeans()
    self._epoch = None

  def _epoch_of(self, step: int) -> int:
    return step // self._steps_per_epoch

  def _begin_epoch_if_needed(self, step: int) -> None:
    if self._epoch is None:
      self._epoch = self._epoch_of(step)
      self._means.take()  # Nothing before the epoch counts in it.
      self._list.on_epoch_begin(self._epoch)

  def _stop(self) -> bool:
    return self._agree(bool(getattr(self._model, "stop_training", False)))

  def on_train_begin(self, step: int) -> None:
    self._means = summaries.EpochMeans(step)
    self._model.stop_training = False
    self._list.on_train_begin()
    self._begin_epoch_if_needed(step)

  def on_train_loop_begin(self, step: int) -> None:
    self._begin_epoch_if_needed(step)
    self._list.on_train_batch_begin(step)

  def on_train_loop_end(self, step: int, logs: dict):
    self._list.on_train_batch_end(step - 1, dict(logs))
    self._means.add(step, logs)
    return self._stop()

  def on_eval_end(self, step: int, logs: dict):
    if self._epoch is None:  # An evaluation without training (a rerun).
      return False
    epoch_logs = self._means.take()
    epoch_logs.update({f"val_{name}": value for name, value in logs.items()
                       if name != "examples"})
    self._list.on_epoch_end(self._epoch, epoch_logs)
    self._epoch = None
    return self._stop()

  def on_boundary(self, step: int):
    return self.on_eval_end(step, {})

  def on_train_end(self, step: int, logs: dict) -> None:
    del step
    self._list.on_train_end({f"val_{name}": value
                             for name, value in logs.items()
                             if name != "examples"})
