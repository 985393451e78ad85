"""`RayReport`: the harness's callback that reports to Ray (see `ray_train`).

Imported only inside a Ray worker, after TensorFlow loaded (it is a
`trainer.callbacks.Callback`).
"""

from collections.abc import Callable
import shutil

from trainer import callbacks as callbacks_lib
from trainer import checkpointing

from launch.distributed import ray_train


class RayReport(callbacks_lib.Callback):
  """Reports each evaluation, and the final result, to Ray.

  An evaluation is kept until the next loop begins (the boundary's
  checkpoint is saved by then) and reported there; `finish` reports the
  final result. Every worker reports at the same points: Ray Train's
  `report` is a barrier. Only the chief attaches a checkpoint, and only one
  newer than the last it attached.
  """

  def __init__(self, *, report: Callable, checkpoint_class,
               checkpoints_dir: str, is_chief: bool,
               steps_per_epoch: float | None = None):
    self._report = report
    self._checkpoint_class = checkpoint_class
    self._checkpoints_dir = checkpoints_dir
    self._is_chief = is_chief
    self._steps_per_epoch = steps_per_epoch
    self._pending = None  # (step, logs) not reported yet.
    self._train_logs = {}
    self._reported_step = -1  # Of the last checkpoint attached.
    self.reports = 0

  def on_train_loop_begin(self, step):
    del step
    self._flush()

  def on_train_loop_end(self, step, logs):
    del step
    self._train_logs = dict(logs)
    return False

  def on_eval_end(self, step, logs):
    self._pending = (step, dict(logs))
    return False

  def on_boundary(self, step):
    """Without eval data: the training loop's logs."""
    self._pending = (step, dict(self._train_logs))
    return False

  def finish(self, step: int, logs: dict) -> None:
    """Reports the final result (the run's returned logs) once."""
    self._pending = (step, dict(logs) or dict(self._train_logs))
    self._flush()

  def _metrics(self, step: int, logs: dict) -> dict:
    metrics = {name: float(value) for name, value in logs.items()}
    metrics["step"] = step
    if self._steps_per_epoch:
      metrics["epoch"] = step / self._steps_per_epoch
    return metrics

  def _flush(self) -> None:
    if self._pending is None:
      return
    step, logs = self._pending
    self._pending = None
    metrics = self._metrics(step, logs)
    newest = (checkpointing.list_checkpoints(self._checkpoints_dir)[-1:]
              if self._is_chief else [])
    if not newest or newest[0][0] <= self._reported_step:
      self._report(metrics)
      self.reports += 1
      return
    directory = ray_train.temporary_copy(newest[0][1])
    try:
      self._report(metrics,
                   checkpoint=self._checkpoint_class.from_directory(directory))
    finally:
      shutil.rmtree(directory, ignore_errors=True)
    self._reported_step = newest[0][0]
    self.reports += 1
