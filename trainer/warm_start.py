"""Warm start: a new run begins from another run's checkpoint.

Model Garden's `init_checkpoint`, Keras's `model.load_weights(path)` then
`fit`: the weights (and, if asked, the optimizer's state) are read from a
checkpoint of another model_dir before the first step; the new run's own
settings, step 0 and data order apply. Once the new model_dir has a
checkpoint of its own, a restart resumes from that instead.
"""

import os
import re

import tensorflow as tf

from trainer import checkpointing
from trainer import layout
from trainer import optimizers


class WarmStartError(ValueError):
  """The warm-start checkpoint is missing or does not fit the model."""


def find_checkpoint(path: str) -> str:
  """The checkpoint prefix `path` names.

  Args:
    path: A checkpoint prefix (".../checkpoints/ckpt-100"), a checkpoints
      directory, or a model_dir (its newest checkpoint).

  Raises:
    WarmStartError: If `path` holds no checkpoint.
  """
  if tf.io.gfile.exists(path + ".index"):
    return path
  for directory in (layout.ModelDir(path).checkpoints, path):
    if tf.io.gfile.isdir(directory):
      found = checkpointing.list_checkpoints(directory)
      if found:
        return found[-1][1]
  raise WarmStartError(
      f"{path} is neither a checkpoint (no {os.path.basename(path)}.index)"
      " nor a directory or model_dir holding one; give a checkpoint prefix"
      " such as run/checkpoints/ckpt-100, or the model_dir of a run that"
      " saved.")


class _Holder(tf.Module):
  """Reaches the network the way the checkpoint's model does."""

  def __init__(self, network):
    super().__init__()
    self.network = network


def _first_mismatch(error: Exception) -> str:
  text = str(error)
  unbound = re.search(r"path=([^,>]+)", text)
  if isinstance(error, AssertionError) and unbound:
    return f"it has no value for {unbound.group(1)}"
  return text.splitlines()[0][:300] if text else type(error).__name__


def warm_start(model, path: str, *, include_optimizer: bool = False) -> str:
  """Loads another run's checkpoint into `model`; returns its prefix.

  Args:
    model: The built model (with its built optimizer), before training.
    path: See `find_checkpoint`.
    include_optimizer: Also load the optimizer's state (slots and update
      count, which a schedule reads); its learning rate stays the
      configured one. Otherwise the optimizer starts fresh.

  Raises:
    WarmStartError: If there is no checkpoint at `path`, or its variables
      do not match the model's (the first mismatch is named).
  """
  prefix = find_checkpoint(path)
  network = getattr(model, "network", None)
  optimizer = getattr(model, "optimizer", None)
  fresh = ([] if include_optimizer or optimizer is None else
           [(variable, variable.numpy()) for variable in optimizer.variables])
  if include_optimizer:
    root = checkpointing.build_checkpoint(
        model, tf.Variable(0, dtype=tf.int64, trainable=False))
  else:  # The network alone: another optimizer's checkpoint loads too.
    root = tf.train.Checkpoint(
        model=_Holder(network) if network is not None else model)
  try:
    with optimizers.rate_layout_of(
        optimizer if include_optimizer else None, prefix) as configured:
      status = root.restore(prefix)
      status.assert_existing_objects_matched()
      status.expect_partial()
      configured()
  except (tf.errors.OpError, ValueError, AssertionError) as error:
    raise WarmStartError(f"{prefix} does not match the model"
                         f" ({_first_mismatch(error)}).") from None
  for variable, value in fresh:  # A user's compiled model: undo.
    variable.assign(value)
  return prefix
