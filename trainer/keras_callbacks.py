"""Keras callbacks (`keras.callbacks.Callback`) driven by the harness's loop.

The harness runs many steps per compiled call, so the callback events map
onto its boundaries:

* `on_train_begin` / `on_train_end`: once per run (per `fit` call).
* `on_epoch_begin(epoch)` / `on_epoch_end(epoch, logs)`: an "epoch" is the
  stretch between two evaluations (`eval_every` steps; with `epochs`, one
  pass over the data), numbered from step 0 (a resumed run goes on with the
  epoch it stopped in, as Keras's `initial_epoch`). `logs` holds the train
  metrics averaged over the loops of the epoch (weighted by steps;
  `writers.EpochMeans`, as in metrics.csv), the latest learning rate, and
  the eval metrics prefixed `val_`, as in `keras.Model.fit`; without eval
  data, the train metrics. An early stop between evaluations evaluates and
  ends that epoch, as Keras's `fit` does.
* `on_train_batch_begin/end(batch, logs)`: at the start/end of every loop
  of `steps_per_loop` steps, as Keras's `fit` with `steps_per_execution`:
  `batch` is the index in the epoch of the loop's first/last batch, `logs`
  that loop's metrics.

`self.model` is the model you gave (for a network the harness wraps, a view
of it whose `optimizer` is the one training it). Setting
`model.stop_training = True` ends training after a checkpoint; every worker
computes the same all-reduced logs and the stop is agreed between workers.
Callbacks that write or send (CSVLogger, ModelCheckpoint, TensorBoard,
RemoteMonitor) run on the chief only. `check_callbacks` refuses, before
training, the callbacks whose meaning the harness cannot keep; the table of
docs/callbacks.md says what each of Keras's does here.
"""

from collections.abc import Callable, Sequence
import importlib.util

import keras

from trainer import callbacks as callbacks_lib
from trainer import writers

_CHIEF_ONLY = (keras.callbacks.CSVLogger, keras.callbacks.ModelCheckpoint,
               keras.callbacks.TensorBoard, keras.callbacks.RemoteMonitor)
_SETS_LEARNING_RATE = (keras.callbacks.ReduceLROnPlateau,
                       keras.callbacks.LearningRateScheduler)
_MONITORS = (keras.callbacks.EarlyStopping, keras.callbacks.ReduceLROnPlateau,
             keras.callbacks.ModelCheckpoint)

# Refused outright: (class name in keras.callbacks, why and what instead).
_REFUSED = (
    ("BackupAndRestore", "duplicates the harness's own resume (the"
     " checkpoints in model_dir, restored when fit runs again with the same"
     " model_dir) and would restore other weights than the step training"
     " resumes from; remove it"),
    ("OrbaxCheckpoint", "duplicates the harness's own checkpoints in"
     " model_dir; remove it"),
    ("ProgbarLogger", "counts batches the harness runs steps_per_loop at a"
     " time and would print nothing here; the harness prints its own"
     " progress (the progress option), remove it"),
    ("SwapEMAWeights", "swaps in the EMA weights around Keras's own evaluate"
     " and predict, which the harness's evaluations and export do not call;"
     " remove it"),
)


class _NetworkView:
  """`self.model` for a network the harness wraps in its training model.

  Everything is the network's (save, weights, layers), except the optimizer
  and metrics, which are the training model's, and `stop_training`/
  `history`, which belong to the view.
  """

  def __init__(self, network: keras.Model, trainer_model: keras.Model):
    object.__setattr__(self, "_network", network)
    object.__setattr__(self, "_trainer_model", trainer_model)
    object.__setattr__(self, "stop_training", False)

  @property
  def optimizer(self):
    return self._trainer_model.optimizer

  @property
  def metrics(self):
    return self._trainer_model.metrics

  def __getattr__(self, name):
    return getattr(self._network, name)

  def __setattr__(self, name, value):
    object.__setattr__(self, name, value)


def callback_model(model: keras.Model, network: keras.Model):
  """What callbacks see as `self.model`: the user's model or network.

  Args:
    model: The model being trained.
    network: What gets exported (`model` itself, or the network the
      harness wraps in it).
  """
  return model if network is model else _NetworkView(network, model)


def _name(callback) -> str:
  kind = type(callback)
  return (f"keras.callbacks.{kind.__name__}"
          if kind.__module__.startswith("keras.") else kind.__name__)


def is_schedule(optimizer) -> bool:
  """Whether `optimizer`'s learning rate is a schedule (cannot be set)."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)  # Loss scaling.
  return isinstance(getattr(inner, "_learning_rate", None),
                    keras.optimizers.schedules.LearningRateSchedule)


def _check_batch_counts(callback, steps_per_loop: int) -> None:
  """Batch counts must land on loop boundaries to keep their meaning."""
  if isinstance(callback, keras.callbacks.ModelCheckpoint):
    if isinstance(callback.save_freq, int) and (
        callback.save_freq % steps_per_loop):
      raise ValueError(
          f"{_name(callback)}(save_freq={callback.save_freq}) saves every"
          f" {callback.save_freq} batches, but the harness runs"
          f" steps_per_loop={steps_per_loop} batches per call; use a multiple"
          f" of {steps_per_loop}, save_freq='epoch', or a steps_per_loop"
          f" that divides {callback.save_freq}.")
  if isinstance(callback, keras.callbacks.TensorBoard):
    if callback.update_freq != "epoch" and steps_per_loop > 1:
      raise ValueError(
          f"{_name(callback)}(update_freq={callback.update_freq!r}) counts one"
          " batch per call, but the harness runs steps_per_loop="
          f"{steps_per_loop} batches per call; use update_freq='epoch' (the"
          " harness writes every loop's metrics to model_dir/summaries"
          " itself).")
    if getattr(callback, "_start_batch", 0) or getattr(callback,
                                                       "_stop_batch", 0):
      raise ValueError(
          f"{_name(callback)}(profile_batch=...) profiles batches the harness"
          " runs steps_per_loop at a time; use the profile_steps option"
          " instead.")


def _check_monitor(callback, model, has_eval_data: bool) -> None:
  """A monitored value must exist, and its direction be known."""
  uses_monitor = not isinstance(callback, keras.callbacks.ModelCheckpoint) or (
      callback.save_best_only or callback.best is not None)
  if not uses_monitor:
    return
  if callback.monitor.startswith("val_") and not has_eval_data:
    raise ValueError(
        f"{_name(callback)} monitors {callback.monitor!r}, but this run"
        " evaluates no data; pass eval_data (or validation_split), or"
        f" monitor {callback.monitor.removeprefix('val_')!r}.")
  if callback.monitor_op is not None:
    return
  callback.set_model(model)
  try:
    callback._set_monitor_op()  # pylint: disable=protected-access
    return
  except ValueError:
    pass  # A harness-built model's metrics are a plain list: look there.
  wanted = callback.monitor.removeprefix("val_")
  for metric in getattr(model, "metrics", ()):
    if metric.name == wanted and hasattr(metric, "_direction"):
      callback.mode = "max" if metric._direction == "up" else "min"  # pylint: disable=protected-access
      callback._set_monitor_op()  # pylint: disable=protected-access
      return
  raise ValueError(
      f"{_name(callback)}(monitor={callback.monitor!r}) cannot tell whether"
      " that value should go up or down; pass mode='max' or mode='min'.")


def check_callbacks(callbacks: Sequence[keras.callbacks.Callback], *,
                    model, steps_per_loop: int, has_eval_data: bool) -> None:
  """Refuses, before training, callbacks that would mean something else.

  Args:
    callbacks: The user's Keras callbacks.
    model: What they see as `self.model` (`callback_model`).
    steps_per_loop: Batches per compiled call.
    has_eval_data: Whether the run evaluates (`val_` metrics exist).

  Raises:
    ValueError: One sentence naming the callback, why, and what instead.
  """
  for callback in callbacks:
    if not isinstance(callback, keras.callbacks.Callback):
      what = (f"the class {callback.__name__}; pass an instance,"
              f" {callback.__name__}(...)" if isinstance(callback, type)
              else f"a {type(callback).__name__}, not a"
              " keras.callbacks.Callback or a trainer.callbacks.Callback")
      raise ValueError(f"callbacks holds {what}.")
    for class_name, why in _REFUSED:
      refused = getattr(keras.callbacks, class_name, None)
      if refused is not None and isinstance(callback, refused):
        raise ValueError(f"{_name(callback)} is not supported: it {why}.")
    if isinstance(callback, _SETS_LEARNING_RATE) and is_schedule(
        model.optimizer):
      raise ValueError(
          f"{_name(callback)} sets the optimizer's learning rate, but it is a"
          " schedule here, which Keras cannot set; use a constant learning"
          " rate (lr_schedule='constant', or a float learning_rate in your"
          " optimizer) or remove the callback.")
    if isinstance(callback, keras.callbacks.RemoteMonitor) and (
        importlib.util.find_spec("requests") is None):
      raise ValueError(f"{_name(callback)} needs the requests package, which"
                       " is not installed; pip install requests.")
    _check_batch_counts(callback, steps_per_loop)
    if isinstance(callback, _MONITORS):
      _check_monitor(callback, model, has_eval_data)


class KerasCallbacks(callbacks_lib.Callback):
  """Adapts a list of Keras callbacks to the controller's callbacks."""

  def __init__(self, callbacks: Sequence[keras.callbacks.Callback], *,
               model: keras.Model, is_chief: bool, steps_per_epoch: int,
               train_steps: int, agree: Callable[[bool], bool] = bool):
    """Initializes the adapter.

    Args:
      callbacks: The user's callbacks.
      model: What the callbacks see as `self.model` (`callback_model`).
      is_chief: Whether this worker writes files.
      steps_per_epoch: Steps between two evaluations (the run's "epoch").
      train_steps: The final step.
      agree: `agree(flag)` is True on every worker if it is on any.
    """
    kept = [callback for callback in callbacks
            if is_chief or not isinstance(callback, _CHIEF_ONLY)]
    self._callbacks = kept
    self.model = model
    self._steps_per_epoch = max(1, steps_per_epoch)
    self._list = keras.callbacks.CallbackList(
        kept, add_history=False, add_progbar=False, model=self.model,
        epochs=-(-train_steps // self._steps_per_epoch),
        steps=self._steps_per_epoch, verbose=0)
    self._agree = agree
    self._means = writers.EpochMeans()
    self._epoch = None

  def _epoch_of(self, step: int) -> int:
    return step // self._steps_per_epoch

  def _batch_of(self, step: int) -> int:
    """The index in its epoch of the batch that step `step + 1` trains."""
    return step - self._epoch * self._steps_per_epoch

  def _begin_epoch_if_needed(self, step: int) -> None:
    if self._epoch is not None:
      return
    self._epoch = self._epoch_of(step)
    self._means.take()  # Nothing before the epoch counts in it.
    resumed_inside = step % self._steps_per_epoch != 0
    for callback in self._callbacks:
      # Resumed inside an epoch: the checkpoint holds the learning rate the
      # schedule set at its start; setting it again would apply it twice.
      if not (resumed_inside and isinstance(
          callback, keras.callbacks.LearningRateScheduler)):
        callback.on_epoch_begin(self._epoch)

  def _stop(self) -> bool:
    return self._agree(bool(getattr(self.model, "stop_training", False)))

  def _call_then_stop(self, call: Callable[[], None]) -> bool:
    """`call()`, then the stop agreement, which every worker must join even
    when a callback raised KeyboardInterrupt on this one."""
    try:
      call()
    except KeyboardInterrupt:
      self._stop()
      raise
    return self._stop()

  def on_train_begin(self, step: int) -> None:
    self._means = writers.EpochMeans(step)
    self.model.stop_training = False
    self._list.on_train_begin()
    self._begin_epoch_if_needed(step)

  def on_train_loop_begin(self, step: int) -> None:
    self._begin_epoch_if_needed(step)
    self._list.on_train_batch_begin(self._batch_of(step))

  def on_train_loop_end(self, step: int, logs: dict):
    self._means.add(step, logs)
    return self._call_then_stop(lambda: self._list.on_train_batch_end(
        self._batch_of(step - 1), dict(logs)))

  def on_eval_end(self, step: int, logs: dict):
    if self._epoch is None:  # An evaluation without training (a rerun).
      return False
    epoch_logs = self._means.take()
    epoch_logs.update({f"val_{name}": value for name, value in logs.items()
                       if name != "examples"})
    epoch, self._epoch = self._epoch, None
    return self._call_then_stop(
        lambda: self._list.on_epoch_end(epoch, epoch_logs))

  def on_boundary(self, step: int):
    return self.on_eval_end(step, {})

  def on_rollback(self, step: int) -> None:
    """Back to `step` after a non-finite loss: the loops after it are
    forgotten; an epoch that ended after it begins again."""
    self._means.roll_back(step)
    if self._epoch is not None and self._epoch_of(step) != self._epoch:
      self._epoch = None

  def on_train_end(self, step: int, logs: dict) -> bool:
    """Ends the callbacks; True if one restored other weights."""
    del step
    restores = any(
        isinstance(callback, keras.callbacks.EarlyStopping)
        and callback.restore_best_weights
        and callback.best_weights is not None for callback in self._callbacks)
    self._list.on_train_end({f"val_{name}": value
                             for name, value in logs.items()
                             if name != "examples"})
    return restores
