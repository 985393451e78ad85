"""`Controller`: the outer loop — when to train, evaluate, save and log.

Like Orbit's controller it never sees the model or the data: it is handed a
runner (`train(n)`, `evaluate()`), a checkpointer and a metric writer. The
clock is an argument so tests need no sleeping.
"""

from collections.abc import Callable, Sequence
import dataclasses
import math
import time

from absl import logging
import tensorflow as tf

from trainer import callbacks as callbacks_lib
from trainer import checkpointing
from trainer import runner as runner_lib
from trainer import writers


class NonFiniteLossError(FloatingPointError):
  """The training loss (or a weight) became NaN or infinite.

  Attributes:
    step: The last step of the loop it happened in.
    loss: That loop's training loss.
  """

  def __init__(self, message: str, *, step: int = 0,
               loss: float = math.nan):
    super().__init__(message)
    self.step, self.loss = step, loss


class StopRequested(Exception):
  """Training stopped early on request, after saving at `step`."""

  def __init__(self, step: int):
    super().__init__(f"stopped at step {step} on request; a checkpoint of"
                     " that step was saved, relaunch to resume.")
    self.step = step


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
  """The schedule of a run.

  Attributes:
    train_steps: Final step.
    steps_per_loop: Most steps per compiled call (and per log line).
    eval_every: Evaluate when the step is a multiple of this (0: at the end).
    checkpoint_every: Save when the step is a multiple of this (0: at end).
    global_batch_size: Examples per step, for examples/sec.
    profile_steps: (a, b): trace steps a..b with the TensorFlow profiler
      (loops are split at a - 1 and b so the trace holds just those steps).
    profile_dir: Where the trace goes (TensorBoard reads
      `profile_dir/plugins/profile`); empty: split the loops, no trace.
  """

  train_steps: int
  steps_per_loop: int
  eval_every: int = 0
  checkpoint_every: int = 0
  global_batch_size: int = 1
  profile_steps: tuple[int, int] | None = None
  profile_dir: str = ""


class Controller:
  """Runs training from a start step to the final step."""

  def __init__(self, *, runner: runner_lib.Runner,
               checkpointer: checkpointing.Checkpointer,
               writer: writers.MetricWriter, config: LoopConfig,
               clock: Callable[[], float] = time.monotonic,
               stop_requested: Callable[[], bool] = lambda: False,
               agree: Callable[[bool], bool] = bool,
               callbacks: Sequence[callbacks_lib.Callback] = (),
               recovery=None):
    """Initializes the controller.

    Args:
      runner: Runs training loops and evaluations.
      checkpointer: Saves at the checkpoint interval and at the end.
      writer: Receives train and eval scalars.
      config: The schedule.
      clock: Seconds, for rates; injectable for tests.
      stop_requested: Polled after every loop on this worker (a stop
        signal); `agree` makes the answer common. True saves and raises
        `StopRequested`.
      agree: `agree(flag)` is True on every worker if it is on any (the
        runner's `agree` in multi-worker runs).
      callbacks: Called after every train loop and evaluation (early
        stopping, plateau, best checkpoint, the user's callbacks); one returning True
        ends training early, after a checkpoint. A `KeyboardInterrupt` a
        callback raises is held until the boundary, where every worker saves;
        then it propagates (one with `immediate = True` at once). One
        returning True from `on_train_end` changed the weights (restored
        the best ones): the final checkpoint is written again and the final
        evaluation repeated, so the checkpoint, the model and the returned
        logs agree.
      recovery: A `trainer.recovery.Recovery`, or None: a non-finite loss
        (or weight) then rolls training back to the newest finite
        checkpoint on every worker, up to its `max_retries` times, instead
        of raising `NonFiniteLossError` at once.
    """
    self._runner = runner
    self._checkpointer = checkpointer
    self._writer = writer
    self._config = config
    self._clock = clock
    self._stop_requested = stop_requested
    self._agree = agree
    self._callbacks = list(callbacks)
    self._recovery = recovery
    self._interrupt = None  # A KeyboardInterrupt a callback raised.
    self.last_step = 0  # The step training ended at (early stops included).
    self._profiling = False

  def _loop_size(self, step: int) -> int:
    """Steps until the next loop, eval, checkpoint or final boundary."""
    size = min(self._config.steps_per_loop, self._config.train_steps - step)
    for interval in (self._config.eval_every, self._config.checkpoint_every):
      if interval:
        size = min(size, interval - step % interval)
    if self._config.profile_steps:
      first, last = self._config.profile_steps
      for boundary in (first - 1, last):  # The trace covers a..b only.
        if boundary > step:
          size = min(size, boundary - step)
    return size

  def _profile(self, step: int) -> None:
    """Starts the trace before step a, stops it after step b."""
    if not self._config.profile_steps or not self._config.profile_dir:
      return  # No trace here (a non-chief worker), but the same loops.
    first, last = self._config.profile_steps
    if not self._profiling and first - 1 <= step < last:
      self._runner.prepare_marked_steps()  # Tracing is not a step's time.
      tf.profiler.experimental.start(self._config.profile_dir)
      self._profiling = True
      logging.info("Profiling steps %d to %d.", step + 1, last)
    elif self._profiling and step >= last:
      self._stop_profiling()

  def _stop_profiling(self) -> None:
    if self._profiling:
      tf.profiler.experimental.stop()
      self._profiling = False
      logging.info("Wrote a profiler trace to %s.", self._config.profile_dir)

  def _marks_steps(self, step: int) -> bool:
    """Whether the loop from `step` runs step by step for the profiler.

    Decided by the schedule alone, so every worker runs the same function
    (the chief alone writes the trace). Each step is then one `train` step
    marker, which the Profile tab's Overview and step-time views need.
    """
    if not self._config.profile_steps:
      return False
    first, last = self._config.profile_steps
    return first - 1 <= step < last

  def _train_loop(self, step: int) -> tuple[int, dict]:
    num_steps = self._loop_size(step)
    start = self._clock()
    if self._marks_steps(step):
      logs = self._runner.train(num_steps, marked_from=step)
    else:
      logs = self._runner.train(num_steps)
    seconds = max(self._clock() - start, 1e-9)
    step += num_steps
    self._check_finite(step, logs["loss"])
    logs["steps_per_sec"] = num_steps / seconds
    logs["examples_per_sec"] = (num_steps * self._config.global_batch_size
                                / seconds)
    self._writer.write("train", step, logs)
    return step, logs

  def _check_finite(self, step: int, loss: float) -> None:
    """Raises `NonFiniteLossError` on every worker if the loss (or, with a
    recovery, a weight) is not finite on any."""
    finite_loss = math.isfinite(loss)
    finite = finite_loss and (self._recovery is None
                              or self._recovery.weights_are_finite())
    if not self._agree(not finite):
      return
    what = (f"the training loss became {loss}" if not finite_loss
            else "the weights became non-finite")
    retries = self._recovery.max_retries if self._recovery else 0
    fix = ("lower the learning rate" if retries else
           "lower the learning rate, or set nan_retries to roll back to the"
           " last checkpoint and retry")
    raise NonFiniteLossError(
        f"{what} in the steps up to {step}; no checkpoint of these weights"
        f" was written: {fix}.", step=step, loss=loss)

  def _roll_back(self, error: NonFiniteLossError) -> int:
    """Rolls back to the newest finite checkpoint; its step (or raises)."""
    rollback = (self._recovery.roll_back(error.step, error.loss)
                if self._recovery is not None else None)
    if rollback is None:
      raise self._give_up(error)
    logging.warning("%s.", rollback.message())
    self._writer.write(writers.RECOVERY_SPLIT, rollback.nan_step,
                       rollback.scalars())
    self._call("on_rollback", rollback.restored_step)
    self.last_step = rollback.restored_step
    return rollback.restored_step

  def _give_up(self, error: NonFiniteLossError) -> NonFiniteLossError:
    """The error after the retries: what they tried."""
    records = self._recovery.records if self._recovery else []
    if not records:
      return error
    head, _, tail = str(error).partition("; ")
    rate = records[-1].get("learning_rate_after", math.nan)
    same = len({(r["nan_step"], r["restored_step"]) for r in records}
               | {(error.step, records[-1]["restored_step"])}) == 1
    cause = (f" (each time in the steps up to {error.step}: if a lower"
             " learning rate does not help, look for an inf or NaN in their"
             " data)" if same else "")
    return NonFiniteLossError(
        f"{head} again after {len(records)} rollback(s) to the last"
        f" checkpoint, each halving the learning rate (now {rate:.4g})"
        f"{cause}; {tail}", step=error.step, loss=error.loss)

  def evaluate(self, step: int) -> dict[str, float]:
    """Evaluates the whole eval split and writes the result at `step`."""
    logs = self._runner.evaluate(
        progress=lambda done, total: self._writer.progress("eval", done,
                                                           total))
    self._writer.write("eval", step, logs)
    return logs

  def _call(self, method: str, *args) -> bool:
    """Calls `method` of every callback; True if any asks to stop.

    A `KeyboardInterrupt` is kept for the boundary (see `__init__`).
    """
    answers = []
    for callback in self._callbacks:
      try:
        answers.append(getattr(callback, method)(*args))
      except KeyboardInterrupt as interrupt:
        if getattr(interrupt, "immediate", False):  # A second Ctrl-C.
          raise
        self._interrupt = self._interrupt or interrupt
        logging.warning("Interrupted by a callback: saving a checkpoint at"
                        " this boundary first.")
    return any(answers)

  def _evaluate_and_call(self, step: int) -> tuple[dict, bool]:
    logs = self.evaluate(step)
    return logs, self._call("on_eval_end", step, logs)

  def run(self, start_step: int) -> dict[str, float]:
    """Trains from `start_step` to the final step (see `_run`)."""
    try:
      return self._run(start_step)
    finally:
      self._stop_profiling()

  def _run(self, start_step: int) -> dict[str, float]:
    """Trains from `start_step` to the final step.

    Evaluates and saves at their intervals and once more at the end.

    Args:
      start_step: The step restored from the latest checkpoint (0 if none).

    Returns:
      The final evaluation's logs (empty if there is no eval data).

    Raises:
      StopRequested: A stop signal, after saving.
      KeyboardInterrupt: A callback raised it, after saving.
    """
    config = self._config
    step = start_step
    self.last_step = step
    self._interrupt = None
    saved_step = start_step if start_step else None
    training = step < config.train_steps
    if not training:
      logging.info("Already at step %d of %d; evaluating only.", step,
                   config.train_steps)
    for callback in self._callbacks if training else ():
      callback.on_train_begin(step)
    if training and not step and self._recovery is not None and (
        self._recovery.max_retries):
      self._checkpointer.save(0)  # A NaN in the first loops rolls back here.
      saved_step = 0
    logs = self._train(step, saved_step)
    if self._agree(self._interrupt is not None):  # In the last loop: saved.
      raise self._interrupt or StopRequested(self.last_step)
    if training and self._agree(self._call("on_train_end", self.last_step,
                                          logs)):
      logging.info("A callback changed the weights at the end of training"
                   " (restored the best ones): saving them at step %d again"
                   " and evaluating them.", self.last_step)
      self._checkpointer.save(self.last_step)
      if self._runner.can_evaluate:  # Not a new row: the step is the same.
        logs = self._runner.evaluate()
        logging.info("Evaluation of the final weights: %s.", ", ".join(
            f"{name} {value:.4f}" for name, value in logs.items()
            if name != "examples"))
    if self._interrupt is not None:
      raise self._interrupt
    return logs

  def _stop_if_asked(self, step: int, saved_step: int | None) -> None:
    """At a boundary: saves and raises if any worker was asked to stop."""
    asked = self._interrupt is not None or self._stop_requested()
    if not self._agree(asked):
      return
    if saved_step != step:
      self._checkpointer.save(step)
    if self._interrupt is not None:
      raise self._interrupt
    raise StopRequested(step)

  def _end_early(self, step: int, eval_logs: dict | None,
                 evaluated: bool) -> dict[str, float]:
    """After an early stop: saves, and ends the epoch as Keras's fit does."""
    logging.info("Training stopped early at step %d.", step)
    self._checkpointer.save(step)
    if not evaluated:  # Stopped between evaluations.
      if self._runner.can_evaluate:
        eval_logs, _ = self._evaluate_and_call(step)
      else:
        self._call("on_boundary", step)
    return eval_logs or {}

  def _train(self, step: int, saved_step: int | None) -> dict[str, float]:
    config = self._config
    while step < config.train_steps:
      self._profile(step)
      self._call("on_train_loop_begin", step)
      try:
        step, logs = self._train_loop(step)
      except NonFiniteLossError as error:
        step = saved_step = self._roll_back(error)
        continue
      self._profile(step)
      self.last_step = step
      stop = self._call("on_train_loop_end", step, logs)
      if step == config.train_steps:
        break
      self._stop_if_asked(step, saved_step)
      eval_logs, evaluated = None, False
      if config.eval_every and step % config.eval_every == 0:
        evaluated = True
        if self._runner.can_evaluate:
          eval_logs, eval_stop = self._evaluate_and_call(step)
        else:
          eval_stop = self._call("on_boundary", step)
        # A signal or interrupt during the evaluation: no loop more.
        self._stop_if_asked(step, saved_step)
        stop = stop or eval_stop
      if stop:
        return self._end_early(step, eval_logs, evaluated)
      if config.checkpoint_every and step % config.checkpoint_every == 0:
        self._checkpointer.save(step)
        saved_step = step
    if saved_step != step:
      self._checkpointer.save(step)
    if not self._runner.can_evaluate:
      self._call("on_boundary", step)
      return {}
    return self._evaluate_and_call(step)[0]
