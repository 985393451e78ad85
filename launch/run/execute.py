"""Runs a `Plan`: the strategy, seeds and model, then `trainer.fit`.

launch decides everything here (strategy, who writes, the display) and
checks the model against the data (`checks`); `trainer.fit` (or
`trainer.evaluate`) then trains, evaluates, saves and exports.
"""

import dataclasses
import os
import sys
import time

from absl import logging

from launch.distributed import gpu_usage
from launch.distributed import liveness
from launch.distributed import preemption
from launch.distributed import ray_train
from launch.distributed import rendezvous
from launch.distributed import strategy as strategy_lib
from launch.errors import ConfigError, flag, spell
from launch.run import checks
from launch.run import plan as plan_lib
from launch.run import resume
from launch.run import writers


@dataclasses.dataclass(frozen=True)
class RunResult:
  """What a run gives back.

  Attributes:
    model: The trained keras.Model (a built-in or wrapped network itself,
      not the harness's training wrapper), ready for `predict`.
    logs: The final evaluation: "loss", each metric, "examples" (empty
      without eval data).
    history: The train and eval rows this run wrote to metrics.jsonl, each
      {"split", "step", metrics...}, on every worker.
    step: The step training ended at.
  """

  model: object
  logs: dict
  history: list
  step: int


def _strategy(plan: plan_lib.Plan):
  """The process's strategy for this plan: built once, then reused."""
  config = plan.config

  def meet() -> float:
    """Multi-worker: all workers meet first; returns the time left."""
    if plan.strategy_kind != "multi_worker":
      return 0.0
    started = time.monotonic()
    # A worker 0 of before a restart fails within its collective timeout.
    rendezvous.meet(plan.cluster, timeout=config.startup_timeout,
                    old_leader_grace=(config.collective_timeout + 60
                                      if config.collective_timeout else None))
    if not config.startup_timeout:
      return 0.0
    left = max(1.0, config.startup_timeout - (time.monotonic() - started))
    # The backstop below cannot print when it fires: say it beforehand.
    logging.info("All workers met; forming TensorFlow's cluster (this"
                 " worker exits 1 if that takes over %.0f s).", left)
    return left

  return strategy_lib.get_strategy(
      plan.strategy_kind, cluster=plan.cluster,
      cpu_devices=config.cpu_devices, gpu_memory=plan.gpu_memory,
      jit_compile=config.train.jit_compile, meet=meet,
      deadline=liveness.hard_deadline)


def _build_model(plan: plan_lib.Plan, strategy, model_class):
  """The model to train, its optimizer built; bad models are bad input.

  A model_fn's model is built on the spec of a training batch, of the
  pipeline the runner then reads (the plan's sources are `BuiltOnce`).
  """
  import tensorflow as tf
  import trainer
  config, source = plan.config, plan.train_source
  returned = []
  spec = (trainer.batch_spec(strategy, source.train_dataset_fn(
      global_batch_size=config.data.global_batch_size, seed=config.data.seed,
      start_step=trainer.resume_step(config.train.model_dir)))
          if plan.model_fn is not None else (None, None))
  try:
    if plan.model_fn is not None:
      model = trainer.build_user_model(
          checks.checked_model_fn(plan, strategy, spec, returned),
          strategy, config=config.train, num_classes=source.num_classes,
          element_spec=spec)
      if trainer.is_compiled(model):
        plan_lib.refuse_for_compiled(plan.given)
    else:
      if source.input_shape is None or source.num_classes is None:
        raise ConfigError(f"the built-in {flag('model')}={config.train.model}"
                          " needs"
                          f" to know the shape and classes of {source.name};"
                          " pass them to the source, or give a model_fn.")
      model = trainer.build_model(
          config.train, strategy, input_shape=source.input_shape,
          num_classes=source.num_classes,
          model_class=model_class or trainer.Model,
          standardization=source.standardization)
  except (ValueError, TypeError, tf.errors.OpError) as error:
    if isinstance(error, ConfigError):
      raise
    raise checks.build_error(plan, error, spec[0]) from None
  # Before anything is written: outputs vs labels on train and eval data.
  checks.check_fits(plan, model, strategy, spec, returned)
  return model


def _set_up(plan: plan_lib.Plan, model_class):
  """Strategy, seeds, the model; the plan with sources built once."""
  import tensorflow as tf
  import trainer
  config = plan.config
  strategy = _strategy(plan)
  tf.keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  plan = dataclasses.replace(
      plan, train_source=trainer.BuiltOnce(plan.train_source),
      eval_source=(None if plan.eval_source is None
                   else trainer.BuiltOnce(plan.eval_source)))
  return strategy, plan, _build_model(plan, strategy, model_class)


def _fit_config(plan: plan_lib.Plan, model):
  """The trainer's settings: plain decisions taken here."""
  import trainer
  config = plan.config
  progress = config.progress
  if progress == "auto":
    progress = "bar" if sys.stderr.isatty() else "log"
  is_multi_worker = plan.strategy_kind == "multi_worker"
  writes_hparams = plan.cluster.is_chief and config.mode == "train"
  return trainer.FitConfig(
      train=config.train, global_batch_size=config.data.global_batch_size,
      seed=config.data.seed, is_chief=plan.cluster.is_chief,
      is_multi_worker=is_multi_worker,
      num_input_pipelines=(plan.cluster.num_workers if is_multi_worker
                           else 1),
      evaluator_task="evaluator" in plan.cluster.cluster,
      heartbeat_file=config.heartbeat_file, progress=progress,
      hparams=writers.hparams(plan, model) if writes_hparams else {},
      task=config.task, watch=config.watch, eval_timeout=config.eval_timeout)


def execute(plan: plan_lib.Plan, *, model_class=None, callbacks=(),
            interruptible: bool = False) -> RunResult:
  """Runs the planned training or evaluation.

  Args:
    plan: The validated plan.
    model_class: Optional `trainer.model.Model` subclass to train instead
      of the default one (a user's `train_step` on a built-in network).
    callbacks: `keras.callbacks.Callback`s and `trainer.callbacks.Callback`s
      (training only).
    interruptible: Ctrl-C (SIGINT) saves at the next loop boundary, then
      raises `KeyboardInterrupt` (with `.step`, the step saved).
  """
  if not isinstance(callbacks, (list, tuple)):  # One, as Keras takes it.
    callbacks = [callbacks]
  guard, dog = liveness.build_guard(
      is_multi_worker=plan.strategy_kind == "multi_worker",
      timeout=plan.config.collective_timeout)
  try:
    if plan.config.mode == "evaluate":
      return _evaluate(plan, model_class)
    # From the start: a stop signal during start-up ends the process at once.
    with preemption.StopSignals(interrupt=interruptible) as stop_signals:
      return _train(plan, model_class, callbacks, guard, stop_signals)
  except Exception as error:  # pylint: disable=broad-except
    checks.raise_if_bad_data(plan, error)
    raise
  finally:
    if dog is not None:
      dog.close()


def _train(plan: plan_lib.Plan, model_class, callbacks, guard,
           stop_signals: preemption.StopSignals) -> RunResult:
  import trainer
  config = plan.config
  strategy, plan, model = _set_up(plan, model_class)
  fit_config = _fit_config(plan, model)
  try:
    trainer.check_callbacks(model, callbacks, config=fit_config,
                            has_eval_data=plan.eval_source is not None)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  fingerprint = resume.model_fingerprint(model)
  if not config.allow_config_change:
    resume.check_fingerprint(config, fingerprint)
  _warm_start(plan, model)
  changes = _changed_settings(plan, fingerprint)
  step = trainer.resume_step(config.train.model_dir)
  fit_config = dataclasses.replace(fit_config, rate_changed_at=(
      resume.rate_changed_at(config, changes, step)))
  earlier = _earlier_config(config) if changes else None
  if plan.cluster.is_chief:  # Checked: the first thing written.
    os.makedirs(config.train.model_dir, exist_ok=True)
    resume.write_config(config, fingerprint, changes=changes, step=step)
    checks.log_data_warnings(plan)
  reporter = ray_train.build_reporter(plan)  # None outside Ray.
  if reporter is not None:
    callbacks = [*callbacks, reporter]
  try:
    result = trainer.fit(
        strategy=strategy, model=model, train_data=plan.train_source,
        eval_data=plan.eval_source, config=fit_config, callbacks=callbacks,
        guard=guard, input_options=_input_options(plan),
        stop_requested=stop_signals.is_set,
        on_training_started=stop_signals.training_started)
  except trainer.CheckpointError as error:
    if not changes:
      raise
    if plan.cluster.is_chief and earlier is not None:
      _put_back(config, earlier)  # The checkpoints' settings, as they were.
    raise ConfigError(
        f"the checkpoints in {config.train.model_dir} were written with"
        f" other settings ({resume.describe_changes(changes) or 'another model'})"
        f" and do not restore under the new ones ({error.first_error});"
        " resume with the earlier settings, or use a new"
        f" {flag('model_dir')} with {flag('init_checkpoint')}="
        f"{config.train.model_dir} to start from their weights.") from None
  except trainer.StopRequested as stopped:
    if not stop_signals.interrupted:
      raise
    raise _saved_interrupt(
        f"interrupted at step {stopped.step}; a checkpoint of that step was"
        " saved, run fit again with the same model_dir to resume.",
        stopped.step) from None
  if stop_signals.interrupted:  # In the final loop: nothing was lost.
    raise _saved_interrupt(f"interrupted in the final loop; the run is"
                           f" complete at step {result.step}, saved and"
                           " exported.", result.step)
  if reporter is not None:  # Ray's Result.metrics and .checkpoint.
    reporter.finish(result.step, result.logs)
  return RunResult(result.model, result.logs, result.history, result.step)


def _changed_settings(plan: plan_lib.Plan, fingerprint: dict) -> dict:
  """The settings changed on this resume (allowed by the plan's checks),
  with "model_fingerprint": {key: [before, now]} for a user's model."""
  config = plan.config
  if not config.allow_config_change:
    return {}
  changes = resume.changed_settings(config)
  if changes:
    logging.info("Resuming under changed settings (%s): they take effect"
                 " from the resumed step.",
                 spell(resume.describe_changes(changes)))
  model_changes = (resume.fingerprint_changes(config, fingerprint)
                   if plan.model_fn is not None else {})
  if model_changes:
    changes = {**changes, "model_fingerprint": model_changes}
  return changes


def _warm_start(plan: plan_lib.Plan, model) -> None:
  """Loads `init_checkpoint` into a model_dir without checkpoints."""
  import trainer
  config = plan.config
  if not config.init_checkpoint:
    if config.init_optimizer:
      raise ConfigError(f"{flag('init_optimizer')} takes the optimizer"
                        " state of a warm start; give"
                        f" {flag('init_checkpoint')} too.")
    return
  if resume.holds_checkpoint(config.train.model_dir):
    logging.info("%s has checkpoints of its own: resuming from them;"
                 " init_checkpoint=%s is not loaded again.",
                 config.train.model_dir, config.init_checkpoint)
    return
  try:
    loaded = trainer.warm_start(model, config.init_checkpoint,
                                include_optimizer=config.init_optimizer)
  except trainer.WarmStartError as error:
    raise ConfigError(f"{flag('init_checkpoint')}: {error}") from None
  logging.info("Warm start: loaded the weights%s of %s.",
               " and optimizer state" if config.init_optimizer else "",
               loaded)


def _earlier_config(config) -> str | None:
  path = _config_path(config)
  try:
    with open(path, encoding="utf-8") as stream:
      return stream.read()
  except OSError:
    return None


def _config_path(config) -> str:
  from trainer import layout  # pylint: disable=import-outside-toplevel
  return layout.ModelDir(config.train.model_dir).config


def _put_back(config, text: str) -> None:
  path = _config_path(config)
  with open(path + ".tmp", "w", encoding="utf-8") as stream:
    stream.write(text)
  os.replace(path + ".tmp", path)


def _saved_interrupt(message: str, step: int) -> KeyboardInterrupt:
  """A KeyboardInterrupt raised after saving at `step` (its `.step`)."""
  interrupt = KeyboardInterrupt(message)
  interrupt.step = step
  return interrupt


def _input_options(plan: plan_lib.Plan):
  """Copy batches to the GPUs ahead of the step; defaults on CPUs."""
  placement = gpu_usage.choose_input_placement(num_gpus=plan.num_gpus)
  if placement.description:
    logging.info("%s", placement.description)
  return gpu_usage.build_input_options(placement)


def _evaluate(plan: plan_lib.Plan, model_class) -> RunResult:
  """Evaluates the latest checkpoint, or every new one with --watch."""
  import trainer
  strategy, plan, model = _set_up(plan, model_class)
  result = trainer.evaluate(strategy=strategy, model=model,
                            eval_data=plan.eval_source,
                            config=_fit_config(plan, model),
                            input_options=_input_options(plan))
  return RunResult(result.model, result.logs, result.history, result.step)
