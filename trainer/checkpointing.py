"""Checkpoints: the chief writes into `model_dir`, other workers to temp dirs.

Under MultiWorkerMirroredStrategy every worker must take part in a save
(reading sync-on-read variables is a collective), but only the chief's files
are kept: the others write into a private temporary directory that is removed
right after (and, if the worker is killed mid-save, by the next worker that
starts: `trainer.storage.remove_stale_scratch`).
"""

import os
import re
import shutil

from absl import logging
import tensorflow as tf

from trainer import optimizers
from trainer import private_apis
from trainer import storage


def build_checkpoint(model, step: tf.Variable) -> tf.train.Checkpoint:
  """The one checkpoint layout: model (with its optimizer), step, RNG states.

  Variables are stored once, under their shortest path in the object graph
  (trainable weights appear under the optimizer); restore by building the
  same objects and calling this function, not by reading names.

  Keras 3's random layers (Dropout, augmentation) draw from a
  `SeedGenerator` whose state variable the model's object graph does not
  reach; it is saved explicitly (in the model's variable order) so that a
  resumed run draws the same masks as an uninterrupted one.
  """
  seed_states = [variable for variable in model.non_trainable_variables
                 if variable.path.endswith("seed_generator_state")]
  return tf.train.Checkpoint(
      model=model, optimizer=model.optimizer, step=step,
      seed_states={str(index): variable
                   for index, variable in enumerate(seed_states)})


class CheckpointError(RuntimeError):
  """Checkpoints exist but none of them can be restored.

  Attributes:
    first_error: Why the newest one did not ("ValueError: ...").
  """

  def __init__(self, message: str, first_error: str = ""):
    super().__init__(message)
    self.first_error = first_error


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
  """(step, prefix) of every complete-looking checkpoint, oldest first.

  Read from the files themselves, not from the `checkpoint` state file: a
  missing or garbage state file makes `tf.train.latest_checkpoint` return
  None, which would silently restart training from step 0.
  """
  found = []
  for path in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index")):
    match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(path))
    if match:
      found.append((int(match.group(1)), path[:-len(".index")]))
  return sorted(found)


class Checkpointer:
  """Saves and restores a `tf.train.Checkpoint` with a step counter.

  Restoring falls back from a corrupt newest checkpoint to older ones, and
  the chief repairs what an interrupted save leaves behind.
  """

  def __init__(self, checkpoint: tf.train.Checkpoint, step: tf.Variable, *,
               directory: str, is_chief: bool, max_to_keep: int = 3,
               optimizer=None, rate_changed_at: int = -1):
    """Initializes the checkpointer.

    Args:
      checkpoint: The objects to save; must track `step`.
      step: An int64 variable holding the number of completed steps.
      directory: Where the chief's checkpoints live (and where every worker
        restores from).
      is_chief: Whether this task keeps its files.
      max_to_keep: How many of the newest checkpoints the chief keeps.
      optimizer: The checkpoint's optimizer: a checkpoint written with a
        float learning rate restores under a schedule and the reverse.
      rate_changed_at: The step from which the learning rate's settings
        changed (-1: never): a checkpoint of that step or older was written
        under the earlier ones, so the configured rate replaces its rate.
    """
    self._optimizer = optimizer
    self._rate_changed_at = rate_changed_at
    self._checkpoint = checkpoint
    self._step = step
    self._is_chief = is_chief
    self.directory = directory
    self._manager = None
    if not is_chief:
      storage.remove_stale_scratch()
    if is_chief:
      self._repair()
      self._manager = tf.train.CheckpointManager(
          checkpoint, directory, max_to_keep=max_to_keep,
          checkpoint_name="ckpt")

  def sibling(self, directory: str, max_to_keep: int = 1) -> "Checkpointer":
    """The same objects saved into another directory (e.g. the best one)."""
    return Checkpointer(self._checkpoint, self._step, directory=directory,
                        is_chief=self._is_chief, max_to_keep=max_to_keep,
                        optimizer=self._optimizer,
                        rate_changed_at=self._rate_changed_at)

  def _repair(self) -> None:
    """Removes orphaned temp dirs; rewrites a lost or garbage state file."""
    for orphan in tf.io.gfile.glob(os.path.join(self.directory, "*_temp*")):
      logging.warning("Removing %s, left by an interrupted save.", orphan)
      if tf.io.gfile.isdir(orphan):
        tf.io.gfile.rmtree(orphan)
      else:
        tf.io.gfile.remove(orphan)
    found = list_checkpoints(self.directory)
    if not found:
      return
    try:
      state = tf.train.get_checkpoint_state(self.directory)
    except Exception:  # pylint: disable=broad-except
      state = None  # Garbage that does not even parse.
    named = state.model_checkpoint_path if state else ""
    if not named or os.path.basename(named) != os.path.basename(found[-1][1]):
      logging.warning("The checkpoint state file of %s is missing or stale;"
                      " rebuilding it from %d checkpoint(s).", self.directory,
                      len(found))
      private_apis.write_checkpoint_state(
          self.directory, found[-1][1], [prefix for _, prefix in found])

  def latest(self) -> str | None:
    found = list_checkpoints(self.directory)
    return found[-1][1] if found else None

  def restore(self, path: str) -> int:
    """Restores the checkpoint at `path`; returns the step it holds."""
    with optimizers.rate_layout_of(self._optimizer,
                                   path) as use_configured_rate:
      status = self._checkpoint.restore(path)
      status.assert_existing_objects_matched()
      # What the checkpoint holds beyond (slots of a setting since turned
      # off) is left unused, without a warning at exit.
      status.expect_partial()
      step = int(self._step.numpy())
      if step <= self._rate_changed_at:
        use_configured_rate()
    logging.info("Restored %s at step %d.", path, step)
    return step

  def restore_latest(self) -> int:
    """Restores the newest checkpoint that loads; returns its step.

    Returns 0 when there is no checkpoint at all.

    Raises:
      CheckpointError: If checkpoints exist but none loads (never a silent
        restart from step 0).
    """
    found = list_checkpoints(self.directory)
    first_error = ""
    for _, path in reversed(found):
      try:
        return self.restore(path)
      except (tf.errors.OpError, ValueError, IndexError,
              AssertionError) as error:
        reason = (f"{type(error).__name__}: "
                  f"{str(error).splitlines()[0][:200] if str(error) else ''}")
        first_error = first_error or reason
        logging.warning("Cannot restore %s (%s); trying an older one.",
                        path, reason)
    if found:
      raise CheckpointError(
          f"none of the {len(found)} checkpoints in {self.directory} can be"
          " restored; move them away to start from scratch.", first_error)
    return 0

  def save(self, step: int) -> str:
    """Saves at `step`; every worker must call this at the same step."""
    self._step.assign(step)
    if self._is_chief:
      path = self._manager.save(checkpoint_number=step)
      logging.info("Saved checkpoint %s.", path)
      return path
    scratch, lock = storage.make_scratch()
    try:
      return self._checkpoint.write(os.path.join(scratch, "ckpt"))
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
      lock.close()
