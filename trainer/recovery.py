"""Rolling back a non-finite loss: restore, lower the learning rate, retry.

Model Garden's `RecoveryCondition` in the harness's loop: when the training
loss (or a weight) becomes NaN or infinite, every worker restores the newest
checkpoint with finite weights, multiplies the learning rate by
`LEARNING_RATE_FACTOR` and trains on from there, up to `max_retries` times.

The data after a rollback are the batches of the steps after the restored
one, replayed (a batch is a function of its step), as Model Garden retries:
a divergence caused by the learning rate goes away at the lower rate; a NaN
caused by the data (an inf in a row) comes back at the same steps, and the
run then stops with the usual message after the retries.

The retry state lives in `checkpoints/nan_recoveries.json` (the chief writes
it): one record per rollback, with the step it went back to; a rollback
removes the checkpoints after that step. A run resumed from a checkpoint is
in the state of every record (but trailing ones to later steps, if newer
checkpoints were lost), so a run killed after a rollback and resumed goes
on with the same (lowered) learning rate as an uninterrupted one. A float
learning rate is lowered in the optimizer's variable (saved in later
checkpoints); a schedule is multiplied by a factor held here.
"""

import dataclasses
import json
import math
import os

from absl import logging
import keras
import tensorflow as tf

from trainer import private_apis

LEARNING_RATE_FACTOR = 0.5
STATE_FILE = "nan_recoveries.json"


@dataclasses.dataclass(frozen=True)
class Rollback:
  """One recovery: what went wrong where, and what training goes on with.

  Attributes:
    retry: 1 for the first rollback of the run.
    max_retries: The budget (`nan_retries`).
    nan_step: The last step of the loop whose loss was not finite.
    restored_step: The step of the restored checkpoint.
    loss: The non-finite loss (nan or inf; finite if weights were not).
    learning_rate_before: The rate in effect when the loss failed.
    learning_rate_after: The rate training goes on with.
  """

  retry: int
  max_retries: int
  nan_step: int
  restored_step: int
  loss: float
  learning_rate_before: float
  learning_rate_after: float

  def message(self) -> str:
    """The one warning line of this rollback."""
    what = (f"non-finite loss ({self.loss})" if not math.isfinite(self.loss)
            else f"non-finite weights (loss {self.loss:.4g})")
    return (f"{what} in the steps up to"
            f" {self.nan_step}; rolled back to step {self.restored_step},"
            f" learning rate {self.learning_rate_before:.4g} ->"
            f" {self.learning_rate_after:.4g} (retry {self.retry} of"
            f" {self.max_retries})")

  def scalars(self) -> dict:
    """The metrics.jsonl row (split "recovery", at `nan_step`)."""
    return {"restored_step": self.restored_step, "retry": self.retry,
            "max_retries": self.max_retries, "loss": self.loss,
            "learning_rate_before": self.learning_rate_before,
            "learning_rate": self.learning_rate_after}


class _ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """A schedule times a factor variable (lowered at each rollback)."""

  def __init__(self, schedule, factor: tf.Variable):
    self.schedule = schedule
    self.factor = factor

  def __call__(self, step):
    rate = self.schedule(step)
    return rate * tf.cast(self.factor, rate.dtype)

  def get_config(self):
    return self.schedule.get_config()


def _inner(optimizer):
  return getattr(optimizer, "inner_optimizer", optimizer)


def _rate_is_variable(optimizer) -> bool:
  return isinstance(private_apis.learning_rate_object(_inner(optimizer)),
                    keras.Variable)


def current_learning_rate(optimizer) -> float:
  return float(tf.convert_to_tensor(_inner(optimizer).learning_rate))


class Recovery:
  """Rolls training back to the newest finite checkpoint, on every worker."""

  def __init__(self, *, model, checkpointer, restart_data, max_retries: int,
               is_chief: bool, strategy: tf.distribute.Strategy,
               agree=bool):
    """Initializes the recovery.

    Args:
      model: The trained model (its optimizer's rate is lowered).
      checkpointer: The run's `checkpointing.Checkpointer`.
      restart_data: `restart_data(step)` makes the training data continue
        at the batch of step `step + 1`.
      max_retries: Rollbacks allowed (0: none, the run stops).
      is_chief: Whether this task writes the state file.
      strategy: The strategy the model was built in.
      agree: `agree(flag)` is True on every worker if it is on any.
    """
    self._model = model
    self._checkpointer = checkpointer
    self._restart_data = restart_data
    self.max_retries = max_retries
    self._is_chief = is_chief
    self._agree = agree
    self._path = os.path.join(checkpointer.directory, STATE_FILE)
    self.records: list[dict] = []
    self._factor = None
    optimizer = _inner(model.optimizer)
    if not _rate_is_variable(optimizer) and max_retries:
      with strategy.scope():
        self._factor = tf.Variable(1.0, trainable=False,
                                   name="nan_recovery_factor")
      self._schedule = private_apis.learning_rate_object(optimizer)
      optimizer.learning_rate = _ScaledSchedule(self._schedule, self._factor)
    self._is_finite = _create_all_finite_fn(model)

  @property
  def retries(self) -> int:
    return len(self.records)

  def weights_are_finite(self) -> bool:
    """Whether every weight and optimizer variable is finite (this worker)."""
    return bool(self._is_finite())

  def resume(self, start_step: int) -> None:
    """After the first restore: the state of the rollbacks before it."""
    records = _read(self._path)
    kept = list(records)
    # A rollback removes the checkpoints after its step, so the records of
    # this checkpoint's past are all of them, unless newer checkpoints were
    # lost: the rollbacks made after those were written go with them.
    while kept and kept[-1]["restored_step"] > start_step:
      kept.pop()
    if self._is_chief and len(kept) != len(records):
      _write(self._path, kept)  # Records of a timeline that is gone.
    self.records = kept
    if not kept:
      return
    if self._factor is None and not _rate_is_variable(self._model.optimizer):
      logging.warning("This run rolled back %d time(s) and its learning-rate"
                      " schedule was lowered; without nan_retries it goes"
                      " on with the schedule unlowered.", len(kept))
    self._apply(start_step)
    logging.info("Resumed after %d rollback(s) of a non-finite loss:"
                 " learning rate %.4g at step %d.", len(kept),
                 current_learning_rate(self._model.optimizer), start_step)

  def _apply(self, restored_step: int) -> None:
    """Lowers the rate after restoring the checkpoint of `restored_step`.

    A schedule's factor is set from every rollback; a rate variable, as
    restored, already holds the rollbacks made before its checkpoint was
    written. Those made after it are the last ones, all to its step or
    later (one to an earlier step removes it), so it is lowered by those.
    """
    optimizer = _inner(self._model.optimizer)
    new_rollbacks = 0
    for record in reversed(self.records):
      if record["restored_step"] < restored_step:
        break
      new_rollbacks += 1
    if self._factor is not None:
      self._factor.assign(LEARNING_RATE_FACTOR ** len(self.records))
    elif _rate_is_variable(optimizer) and new_rollbacks:
      optimizer.learning_rate = float(
          current_learning_rate(optimizer)
          * LEARNING_RATE_FACTOR ** new_rollbacks)

  def roll_back(self, nan_step: int, loss: float) -> Rollback | None:
    """Restores the newest finite checkpoint and lowers the learning rate.

    Args:
      nan_step: The end of the loop whose loss (or weights) was not finite.
      loss: That loop's loss.

    Returns:
      What was done, or None when the retries are used up or no
      checkpoint with finite weights is left (the caller stops the run).
    """
    if self.retries >= self.max_retries:
      return None
    before = current_learning_rate(self._model.optimizer)
    restored = self._restore_finite()
    if restored is None:
      return None
    self.records.append({"retry": self.retries + 1, "nan_step": nan_step,
                         "restored_step": restored, "loss": str(loss)})
    self._apply(restored)
    # A schedule's rate at the restored step says little (0 in a warmup):
    # the rate at the failure, times the factor, is what it now gives there.
    after = (before * LEARNING_RATE_FACTOR if self._factor is not None
             else current_learning_rate(self._model.optimizer))
    self.records[-1].update(learning_rate_before=before,
                            learning_rate_after=after)
    if self._is_chief:
      _write(self._path, self.records)
    self._restart_data(restored)
    return Rollback(self.retries, self.max_retries, nan_step, restored, loss,
                    before, after)

  def _restore_finite(self) -> int | None:
    """Restores the newest checkpoint with finite weights; its step.

    A checkpoint that a rollback already went back to and that failed
    again (no checkpoint was written since) is passed over for the one
    before it: its weights may be finite but already diverging. The chief
    removes the checkpoints after the restored one, so that a restart
    resumes on the path training now takes.
    """
    from trainer import checkpointing  # pylint: disable=import-outside-toplevel
    found = checkpointing.list_checkpoints(self._checkpointer.directory)
    if (len(found) > 1 and self.records
        and found[-1][0] == self.records[-1]["restored_step"]):
      found = found[:-1]
    for index in range(len(found) - 1, -1, -1):
      path = found[index][1]
      try:
        step = self._checkpointer.restore(path)
      except (tf.errors.OpError, ValueError, IndexError,
              AssertionError) as error:
        logging.warning("Cannot restore %s (%s); trying an older one.", path,
                        type(error).__name__)
        continue
      if not self._agree(not self.weights_are_finite()):
        if self._is_chief:
          _remove_after(self._checkpointer.directory, step)
        return step
      logging.warning("%s holds non-finite weights; trying an older one.",
                      path)
    return None

  def finish(self) -> None:
    """Puts the schedule back (the export's optimizer stays Keras's own)."""
    if self._factor is not None:
      _inner(self._model.optimizer).learning_rate = self._schedule


def _create_all_finite_fn(model):
  """`all_finite()`: whether the weights and the optimizer's float state
  (slots, rate) are finite; reads this worker's copies, no collective."""
  variables = [v for v in
               list(model.weights) + list(model.optimizer.variables)
               if str(getattr(v.dtype, "name", v.dtype)) in (
                   "float16", "bfloat16", "float32", "float64")]
  unique = list({id(v): v for v in variables}.values())

  @tf.function
  def all_finite():
    checks = [tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v)))
              for v in unique]
    return tf.reduce_all(checks) if checks else tf.constant(True)

  return all_finite


def _remove_after(directory: str, step: int) -> None:
  """Removes the checkpoints of steps after `step` (the abandoned path)."""
  from trainer import checkpointing  # pylint: disable=import-outside-toplevel
  for later, prefix in checkpointing.list_checkpoints(directory):
    if later > step:
      for path in tf.io.gfile.glob(prefix + ".*"):
        tf.io.gfile.remove(path)
      logging.info("Removed %s, written on the path rolled back from.",
                   prefix)


def _read(path: str) -> list[dict]:
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as stream:
    return list(json.load(stream).get("rollbacks", []))


def _write(path: str, records: list[dict]) -> None:
  staging = path + ".tmp"
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(staging, "w") as stream:
    json.dump({"rollbacks": records}, stream, indent=1)
  tf.io.gfile.rename(staging, path, overwrite=True)

