"""Runs a `Plan`: strategy -> model -> data -> loop -> checkpoint -> export.

This is the only module that sees datasets and trainer together.
"""

import dataclasses
import os
import time

from absl import logging

from launch.distributed import gpu_usage
from launch.distributed import liveness
from launch.run import model_check
from launch.run import plan as plan_lib
from launch.distributed import preemption
from launch.run import resume
from launch.run import actions as run_actions
from launch.distributed import rendezvous
from launch.run import writers
from launch.distributed import strategy as strategy_lib
from launch.errors import ConfigError, flag


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


def _model_dir(plan: plan_lib.Plan):
  from trainer import layout  # pylint: disable=import-outside-toplevel
  return layout.ModelDir(plan.config.train.model_dir)


def _strategy(plan: plan_lib.Plan):
  """The process's strategy for this plan: built once, then reused."""
  config = plan.config

  def meet() -> float:
    """Multi-worker: all workers meet first; returns the time left."""
    if plan.strategy_kind != "multi_worker":
      return 0.0
    started = time.monotonic()
    rendezvous.meet(plan.cluster, timeout=config.startup_timeout)
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


def _element_spec(plan: plan_lib.Plan, strategy):
  """Specs of one per-replica training batch."""
  import tensorflow as tf
  context = tf.distribute.InputContext(
      num_replicas_in_sync=strategy.num_replicas_in_sync)
  dataset_fn = plan.train_source.train_dataset_fn(
      global_batch_size=plan.config.data.global_batch_size,
      seed=plan.config.data.seed, start_step=0)
  return dataset_fn(context).element_spec


def _build_model(plan: plan_lib.Plan, strategy, model_class):
  """The model to train, its optimizer built; bad models are bad input."""
  import tensorflow as tf
  from trainer import build, user_models
  from trainer import model as model_lib
  config, source = plan.config, plan.train_source
  returned = []
  spec = (_element_spec(plan, strategy) if plan.model_fn is not None
          else (None, None))
  try:
    if plan.model_fn is not None:
      model = user_models.build_user_model(
          model_check.checked_model_fn(plan, strategy, spec, returned),
          strategy, config=config.train, num_classes=source.num_classes,
          element_spec=spec)
      if user_models.is_compiled(model):
        plan_lib.refuse_for_compiled(plan.given)
    else:
      if source.input_shape is None or source.num_classes is None:
        raise ConfigError(f"the built-in {flag('model')}={config.train.model}"
                          " needs"
                          f" to know the shape and classes of {source.name};"
                          " pass them to the source, or give a model_fn.")
      model = build.build_model(
          config.train, strategy, input_shape=source.input_shape,
          num_classes=source.num_classes,
          model_class=model_class or model_lib.Model,
          standardization=source.standardization)
  except (ValueError, TypeError, tf.errors.OpError) as error:
    if isinstance(error, ConfigError):
      raise
    raise model_check.build_error(plan, error, spec[0]) from None
  # Before anything is written: outputs vs labels on train and eval data.
  model_check.check_fits(plan, model, strategy, spec, returned)
  return model


def _set_up(plan: plan_lib.Plan, model_class):
  """Strategy, seeds, model and checkpointer: common to train and evaluate."""
  import tensorflow as tf
  from trainer import checkpointing

  config = plan.config
  strategy = _strategy(plan)
  tf.keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  model = _build_model(plan, strategy, model_class)
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
  checkpointer = checkpointing.Checkpointer(
      checkpointing.build_checkpoint(model, step), step,
      directory=_model_dir(plan).checkpoints,
      is_chief=plan.cluster.is_chief and config.mode == "train",
      max_to_keep=config.train.keep_checkpoints)
  return strategy, model, checkpointer


def _eval_input(plan: plan_lib.Plan, model):
  """(dataset_fn, steps) of the eval data, or (None, 0)."""
  from trainer import user_models
  if plan.eval_source is None:
    return None, 0
  pipelines = (plan.cluster.num_workers if plan.strategy_kind == "multi_worker"
               else 1)
  # A compiled model's own test_step averages the loss per batch, so it
  # gets every example once and no padding (see datasets' eval_dataset_fn).
  return plan.eval_source.eval_dataset_fn(
      global_batch_size=plan.config.data.global_batch_size,
      num_input_pipelines=pipelines,
      padded=not user_models.is_compiled(model))


def execute(plan: plan_lib.Plan, *, model_class=None, callbacks=(),
            interruptible: bool = False) -> RunResult:
  """Runs the planned training or evaluation.

  Args:
    plan: The validated plan.
    model_class: Optional `trainer.model.Model` subclass to train instead
      of the default one (a user's `train_step` on a built-in network).
    callbacks: `keras.callbacks.Callback`s and `trainer.actions.Action`s
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
    model_check.raise_if_bad_data(plan, error)
    raise
  finally:
    if dog is not None:
      dog.close()


def _say_if_complete(plan: plan_lib.Plan, start_step: int) -> None:
  steps = plan.config.train.train_steps
  if start_step >= steps:
    logging.warning(
        "%s is complete at step %d (train_steps=%d): this run only evaluates"
        " its final checkpoint. Raise train_steps above %d to train on, or"
        " use a new model_dir to start over.",
        plan.config.train.model_dir, start_step, steps, start_step)


def _train(plan: plan_lib.Plan, model_class, callbacks, guard,
           stop_signals: preemption.StopSignals) -> RunResult:
  from trainer import export, loop, runner, summaries, user_models

  config = plan.config
  train_config = config.train
  strategy, model, checkpointer = _set_up(plan, model_class)
  paths = _model_dir(plan)
  callback_view = run_actions.check_callbacks(plan, model, callbacks)
  fingerprint = resume.model_fingerprint(model)
  if not config.allow_config_change:
    resume.check_fingerprint(config, fingerprint)
  if plan.cluster.is_chief:
    os.makedirs(train_config.model_dir, exist_ok=True)
    resume.write_config(config, fingerprint)
  start_step = checkpointer.restore_latest()
  _say_if_complete(plan, start_step)
  if 0 < start_step < train_config.train_steps and plan.cluster.is_chief:
    logging.info("Resuming from step %d of %d.", start_step,
                 train_config.train_steps)
  for role, source in (("Train", plan.train_source),
                       ("Eval", plan.eval_source)):
    if source is not None and plan.cluster.is_chief:
      logging.info("%s data: %s.", role, source.description.rstrip("."))
  if plan.cluster.is_chief and plan.config.task != "auto":
    logging.info("Task: %s (%s).", plan.config.task,
                 "loss and metrics of compile()"
                 if user_models.is_compiled(model) else
                 f"loss {train_config.loss}, metrics"
                 f" {', '.join(train_config.metrics)}")
  if plan.cluster.is_chief:
    model_check.log_data_warnings(plan)
    from trainer import model_summary
    model_summary.log(user_models.network_of(model))

  # With an evaluator task in the cluster, it evaluates; training does not.
  has_sidecar = "evaluator" in plan.cluster.cluster
  eval_dataset_fn, eval_steps = _eval_input(plan, model)
  train_runner = runner.Runner(
      strategy=strategy, model=model,
      train_dataset_fn=plan.train_source.train_dataset_fn(
          global_batch_size=config.data.global_batch_size,
          seed=config.data.seed, start_step=start_step),
      eval_dataset_fn=None if has_sidecar else eval_dataset_fn,
      eval_steps=eval_steps,
      eval_steps_per_call=train_config.steps_per_loop,
      jit_compile=train_config.jit_compile, guard=guard,
      input_options=_input_options(plan))
  history = summaries.HistoryWriter()
  writer = writers.build_writer(plan, is_writer=plan.cluster.is_chief,
                         history=history, start_step=start_step,
                         model=model)
  agree = (train_runner.agree if plan.strategy_kind == "multi_worker"
           else bool)  # Every worker's answer to a question.
  controller = loop.Controller(
      runner=train_runner, checkpointer=checkpointer, writer=writer,
      config=loop.LoopConfig(
          train_steps=train_config.train_steps,
          steps_per_loop=train_config.steps_per_loop,
          eval_every=train_config.eval_every,
          checkpoint_every=train_config.checkpoint_every,
          global_batch_size=config.data.global_batch_size,
          profile_steps=train_config.profile_steps,
          profile_dir=(paths.split_summaries("train")
                       if plan.cluster.is_chief else "")),
      stop_requested=stop_signals.is_set, agree=agree,
      actions=run_actions.build_actions(plan, callback_view, model, checkpointer,
                             callbacks, agree))
  try:
    stop_signals.training_started()
    logs = _run_interruptibly(controller, start_step, stop_signals)
    network = user_models.network_of(model)
    export.export_model(network, paths.export,
                        is_chief=plan.cluster.is_chief,
                        metadata=dict(_export_metadata(plan, model),
                                      step=controller.last_step))
  finally:
    writer.close()
  logging.info("Done at step %d.", controller.last_step)
  if stop_signals.interrupted:  # In the final loop: nothing was lost.
    raise _saved_interrupt(f"interrupted in the final loop; the run is"
                           f" complete at step {controller.last_step},"
                           " saved and exported.", controller.last_step)
  return RunResult(network, logs, history.rows, controller.last_step)


def _run_interruptibly(controller, start_step: int,
                       stop_signals: preemption.StopSignals) -> dict:
  """`controller.run`; a Ctrl-C that saved becomes a KeyboardInterrupt."""
  from trainer import loop
  try:
    logs = controller.run(start_step)
  except loop.StopRequested as stopped:
    if not stop_signals.interrupted:
      raise
    raise _saved_interrupt(
        f"interrupted at step {stopped.step}; a checkpoint of that step was"
        " saved, run fit again with the same model_dir to resume.",
        stopped.step) from None
  return logs


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


def _export_metadata(plan: plan_lib.Plan, model) -> dict:
  """What `python -m launch.predict` needs besides the network.

  How to feed raw features, and the loss that says what the network emits
  (logits or probabilities): the model's own when it has one (compile()'s,
  or a builder's `keras.losses.Loss`), else the options' `loss` and
  `from_logits`, which built the built-in and uncompiled networks. The
  task: a regression has no class count and no `from_logits`; classes
  keep their names (`class_names`) when the data has them.
  """
  from trainer import export
  source, train = plan.train_source, plan.config.train
  metadata = {"dataset": source.name,
              "feature_scale": getattr(source, "feature_scale", 1.0),
              "input_shape": source.input_shape,
              **export.model_loss_metadata(
                  model, loss=dict(train.output_losses) or train.loss,
                  from_logits=train.from_logits)}
  if getattr(source, "input_format", None):  # Images, a CSV's columns.
    metadata["input_format"] = source.input_format
  # A compiled model's own regression loss says it, whatever the labels.
  if (plan.config.task == "regression"
      or metadata.get("loss") in export.REGRESSION_LOSSES):
    metadata.pop("from_logits", None)
    return dict(metadata, task="regression")
  if plan.config.task == "classification":
    metadata["task"] = "classification"
  metadata["num_classes"] = source.num_classes
  if getattr(source, "class_names", None):
    metadata["class_names"] = list(source.class_names)
  return metadata


def _evaluate(plan: plan_lib.Plan, model_class) -> RunResult:
  """Evaluates the latest checkpoint, or every new one with --watch."""
  from trainer import evaluator, runner, summaries, user_models

  config = plan.config
  strategy, model, checkpointer = _set_up(plan, model_class)
  eval_dataset_fn, eval_steps = _eval_input(plan, model)
  eval_runner = runner.Runner(
      strategy=strategy, model=model, train_dataset_fn=None,
      eval_dataset_fn=eval_dataset_fn, eval_steps=eval_steps,
      eval_steps_per_call=config.train.steps_per_loop,
      input_options=_input_options(plan))
  os.makedirs(config.train.model_dir, exist_ok=True)
  history = summaries.HistoryWriter()
  writer = writers.build_writer(plan, is_writer=True, history=history)
  try:
    if config.watch:
      step, logs = evaluator.watch_checkpoints(
          checkpointer=checkpointer, runner=eval_runner, writer=writer,
          final_step=config.train.train_steps, timeout=config.eval_timeout)
    else:
      step, logs = evaluator.evaluate_latest(
          checkpointer=checkpointer, runner=eval_runner, writer=writer)
  finally:
    writer.close()
  return RunResult(user_models.network_of(model), logs, history.rows, step)
