"""Evaluating saved checkpoints: once, or as a sidecar that watches them."""

from absl import logging
import tensorflow as tf

from trainer import checkpointing
from trainer import runner as runner_lib
from trainer import writers


class NoCheckpointError(FileNotFoundError):
  """There is no checkpoint to evaluate."""


def evaluate_latest(*, checkpointer: checkpointing.Checkpointer,
                    runner: runner_lib.Runner,
                    writer: writers.MetricWriter) -> tuple[int, dict]:
  """Evaluates the newest checkpoint; returns (step, logs)."""
  path = checkpointer.latest()
  if path is None:
    raise NoCheckpointError(f"{checkpointer.directory} holds no checkpoint"
                            " to evaluate.")
  step = checkpointer.restore(path)
  logs = runner.evaluate()
  writer.write("evaluate", step, logs)
  return step, logs


def watch_checkpoints(*, checkpointer: checkpointing.Checkpointer,
                      runner: runner_lib.Runner,
                      writer: writers.MetricWriter, final_step: int,
                      timeout: float,
                      poll_seconds: float = 1.0) -> tuple[int, dict]:
  """Evaluates every new checkpoint until the one at `final_step`.

  Args:
    checkpointer: Restores into the evaluated model.
    runner: Evaluates the eval split.
    writer: Receives one "evaluate" record per checkpoint.
    final_step: The training run's last step; its checkpoint ends the watch.
    timeout: Seconds to wait for a new checkpoint before giving up.
    poll_seconds: How often to look for one.

  Returns:
    (step, logs) of the final evaluation.

  Raises:
    TimeoutError: If no new checkpoint appeared for `timeout` seconds.
  """
  step, logs = -1, {}
  for path in tf.train.checkpoints_iterator(
      checkpointer.directory, min_interval_secs=poll_seconds,
      timeout=timeout):
    try:
      step = checkpointer.restore(path)
    except (tf.errors.NotFoundError, tf.errors.DataLossError) as error:
      # Deleted by the chief's max_to_keep, or still being replaced.
      logging.warning("Skipped %s: %s", path, type(error).__name__)
      continue
    logs = runner.evaluate()
    writer.write("evaluate", step, logs)
    if step >= final_step:
      return step, logs
  raise TimeoutError(f"no new checkpoint in {checkpointer.directory} for"
                     f" {timeout:g} s; the last one evaluated was step {step}.")
