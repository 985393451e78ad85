"""Checkpoints: the chief writes into `model_dir`, other workers to temp dirs.

Under MultiWorkerMirroredStrategy every worker must take part in a save
(reading sync-on-read variables is a collective), but only the chief's files
are kept: the others write into a private temporary directory that is removed
right after.
"""

import os
import shutil
import tempfile

from absl import logging
import tensorflow as tf

CHECKPOINT_SUBDIR = "checkpoints"


def build_checkpoint(model, step: tf.Variable) -> tf.train.Checkpoint:
  """The one checkpoint layout: model (with its optimizer) and step.

  Variables are stored once, under their shortest path in the object graph
  (trainable weights appear under the optimizer); restore by building the
  same objects and calling this function, not by reading names.
  """
  return tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=step)


class Checkpointer:
  """Saves and restores a `tf.train.Checkpoint` with a step counter."""

  def __init__(self, checkpoint: tf.train.Checkpoint, step: tf.Variable, *,
               directory: str, is_chief: bool, max_to_keep: int = 3):
    """Initializes the checkpointer.

    Args:
      checkpoint: The objects to save; must track `step`.
      step: An int64 variable holding the number of completed steps.
      directory: Where the chief's checkpoints live (and where every worker
        restores from).
      is_chief: Whether this task keeps its files.
      max_to_keep: How many of the newest checkpoints the chief keeps.
    """
    self._checkpoint = checkpoint
    self._step = step
    self._is_chief = is_chief
    self.directory = directory
    self._manager = None
    if is_chief:
      self._manager = tf.train.CheckpointManager(
          checkpoint, directory, max_to_keep=max_to_keep,
          checkpoint_name="ckpt")

  def latest(self) -> str | None:
    return tf.train.latest_checkpoint(self.directory)

  def restore(self, path: str) -> int:
    """Restores the checkpoint at `path`; returns the step it holds."""
    self._checkpoint.restore(path).assert_existing_objects_matched()
    step = int(self._step.numpy())
    logging.info("Restored %s at step %d.", path, step)
    return step

  def restore_latest(self) -> int:
    """Restores the newest checkpoint, if any; returns the step it holds."""
    path = self.latest()
    return 0 if path is None else self.restore(path)

  def save(self, step: int) -> str:
    """Saves at `step`; every worker must call this at the same step."""
    self._step.assign(step)
    if self._is_chief:
      path = self._manager.save(checkpoint_number=step)
      logging.info("Saved checkpoint %s.", path)
      return path
    scratch = tempfile.mkdtemp(prefix="tfharness-worker-ckpt-")
    try:
      return self._checkpoint.write(os.path.join(scratch, "ckpt"))
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
