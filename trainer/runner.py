"""`Runner`: the model's steps over distributed data, as plain Python calls.

The controller sees only `train(num_steps) -> logs` and `evaluate() -> logs`;
the runner owns the iterators and the compiled loops.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from trainer import loss_tracking
from trainer import model as model_lib
from trainer import pipelines
from trainer import private_apis
from trainer import step_fns
from trainer import user_models
from trainer import watchdog


class Runner:
  """Runs training loops and full evaluations under one strategy."""

  def __init__(self, *, strategy: tf.distribute.Strategy,
               model: model_lib.Model, train_dataset_fn,
               eval_dataset_fn=None, eval_steps: int = 0,
               eval_steps_per_call: int = 0, jit_compile: bool = False,
               guard=watchdog.unguarded, input_options=None):
    """Initializes the runner.

    Args:
      strategy: The strategy; the model and its optimizer were built in its
        scope.
      model: The model to train and evaluate.
      train_dataset_fn: Function of an InputContext giving an infinite
        dataset of per-replica training batches, or None (evaluation only).
      eval_dataset_fn: Function giving the finite, padded eval dataset.
      eval_steps: Number of steps of one full evaluation.
      eval_steps_per_call: Evaluate in calls of this many steps, reporting
        progress after each (0: one call).
      jit_compile: Compile the per-replica step with XLA.
      guard: `guard(what)` context manager around every compiled call (they
        hold collectives): a `Watchdog.guard` in multi-worker runs.
      input_options: `tf.distribute.InputOptions` of both datasets (e.g.
        copying batches to the GPUs ahead of the step), or None.
    """
    self._strategy = strategy
    self._model = model
    self._guard = guard
    self._input_options = input_options
    self._train_iterator = None
    if train_dataset_fn is not None:  # None: an evaluator that never trains.
      self.restart_train_data(train_dataset_fn)
    self._eval_dataset = None
    if eval_dataset_fn is not None:
      self._eval_dataset = pipelines.distribute(strategy, eval_dataset_fn,
                                                input_options)
    self._eval_steps = eval_steps
    self._eval_steps_per_call = eval_steps_per_call or eval_steps
    self._train_step = self._test_step = self._loss_watch = None
    if user_models.is_compiled(model):  # Its own step logs its loss.
      self._loss_watch = loss_tracking.LossWatch(model, strategy)
      self._train_step = self._loss_watch.wrap_step(model.train_step,
                                                    training=True)
      self._test_step = self._loss_watch.wrap_step(model.test_step,
                                                   training=False)
      self._read_observed_loss = step_fns.create_read_fn(
          self._loss_watch.observed_loss)
    self._loss_unchecked = self._loss_watch is not None
    self._train_loop = step_fns.create_train_loop_fn(
        strategy, model, jit_compile=jit_compile, train_step=self._train_step)
    self._train_one = None  # One step per call, built when profiling.
    self._jit_compile = jit_compile
    self._eval_loop = step_fns.create_eval_loop_fn(
        strategy, model, test_step=self._test_step)
    self._read_metrics = step_fns.create_read_metrics_fn(model)
    self._any_replica = step_fns.create_any_replica_fn(strategy)

  def restart_train_data(self, train_dataset_fn) -> None:
    """Trains on from the dataset of `train_dataset_fn` (after a rollback:
    the one starting at the restored step)."""
    self._train_iterator = iter(pipelines.distribute(
        self._strategy, train_dataset_fn, self._input_options))

  @property
  def can_evaluate(self) -> bool:
    return self._eval_dataset is not None

  def _reset_metrics(self):
    self._model.reset_metrics()
    if self._loss_watch:
      self._loss_watch.reset()

  def train(self, num_steps: int, *,
            marked_from: int | None = None) -> dict[str, float]:
    """Runs `num_steps` steps; returns metrics over them and the LR.

    Args:
      num_steps: Steps to run, in one compiled call.
      marked_from: Instead, one call per step, each marked as step
        `marked_from + i + 1` for the profiler. Every worker must choose
        the same way (the two functions hold different collectives).
    """
    self._reset_metrics()
    with self._guard("a training loop"):
      if marked_from is None:
        self._train_loop(self._train_iterator,
                         tf.constant(num_steps, dtype=tf.int32))
      else:
        self._train_marked(num_steps, marked_from)
    logs = self._metric_results()
    if self._loss_unchecked:
      self._check_loss(logs)
    logs["learning_rate"] = float(
        tf.convert_to_tensor(self._model.optimizer.learning_rate))
    return logs

  def _check_loss(self, logs: dict[str, float]) -> None:
    """Warns once, after the first loop, if the step logs a wrong loss."""
    with self._guard("a metric read"):  # A collective on every worker.
      observed = float(self._read_observed_loss())
    message = self._loss_watch.check(logs, observed)
    # One run, one warning: the chief's (every worker reads the same loss).
    if message and self._strategy.extended.should_checkpoint:
      logging.warning("%s", message)
    self._loss_unchecked = False  # Once: the first loop tells.

  def prepare_marked_steps(self) -> None:
    """Traces the one-step function, so the profile does not time that."""
    if self._train_one is None:
      self._train_one = step_fns.create_train_step_fn(
          self._strategy, self._model, jit_compile=self._jit_compile,
          train_step=self._train_step)
      self._train_one.get_concrete_function(self._train_iterator)

  def _train_marked(self, num_steps: int, first: int) -> None:
    self.prepare_marked_steps()
    for index in range(num_steps):
      with private_apis.profiler_step("train", first + index + 1):
        self._train_one(self._train_iterator)

  def agree(self, local_flag: bool) -> bool:
    """True on every worker if `local_flag` is True on any (a collective)."""
    with self._guard("the stop-signal agreement"):
      return bool(self._any_replica(tf.constant(local_flag)))

  def _metric_results(self) -> dict[str, float]:
    with self._guard("a metric read"):
      return _scalars(self._read_metrics())

  def evaluate(self, progress=None) -> dict[str, float]:
    """Evaluates the whole eval split once; adds the example count.

    Args:
      progress: Called as `progress(done_steps, eval_steps)` after each call
        of `eval_steps_per_call` steps.
    """
    if self._eval_dataset is None:
      raise ValueError("this runner has no eval dataset.")
    self._reset_metrics()
    iterator, examples, done = iter(self._eval_dataset), 0.0, 0
    while done < self._eval_steps:
      steps = min(self._eval_steps_per_call, self._eval_steps - done)
      with self._guard("an evaluation"):
        examples += float(self._eval_loop(
            iterator, tf.constant(steps, dtype=tf.int32)))
      done += steps
      if progress:
        progress(done, self._eval_steps)
    logs = self._metric_results()
    logs["examples"] = int(examples)
    logging.debug("Evaluated %d examples.", logs["examples"])
    return logs


def _scalars(values: dict) -> dict[str, float]:
  """Metric results as scalars; a vector result (e.g. `F1Score()` per class)
  becomes one scalar per entry, `name/0`, `name/1`, ..."""
  scalars = {}
  for name, value in values.items():
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
      scalars[name] = float(array)
    else:
      scalars.update({f"{name}/{index}": float(entry)
                      for index, entry in enumerate(array.reshape(-1))})
  return scalars
