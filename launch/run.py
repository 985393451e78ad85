"""Wires a validated config into a run: strategy -> data -> model -> loop.

This is the only module that sees datasets and trainer together.
"""

import dataclasses
import os
import sys
import time

from absl import logging

from datasets import sources
from datasets import tfrecord
from launch import cluster as cluster_lib
from launch import config as config_lib
from launch import gpu_usage
from launch import liveness
from launch import preemption
from launch import rendezvous
from launch import strategy as strategy_lib
from launch.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a validated run will do, decided before TensorFlow starts."""

  config: config_lib.RunConfig
  cluster: cluster_lib.ClusterInfo
  source: sources.ArraySource | tfrecord.TFRecordSource
  strategy_kind: str
  num_replicas: int
  gpu_memory: gpu_usage.MemoryPolicy
  num_gpus: int = 0


def plan_run(config: config_lib.RunConfig,
             cluster: cluster_lib.ClusterInfo) -> Plan:
  """Validates everything and loads the data, touching nothing on disk.

  Raises:
    ConfigError: If the flags, cluster or data are unusable.
  """
  config_lib.validate(config)
  if config.mode == "train" and not config.allow_config_change:
    config_lib.check_resume_compatible(config)
  if cluster.is_evaluator:
    if config.strategy == "multi_worker":
      raise ConfigError("an evaluator task runs apart from the training"
                        " cluster; use --strategy=auto, mirrored or"
                        " one_device for it.")
    # A sidecar: evaluate each checkpoint the training tasks write.
    config = dataclasses.replace(config, mode="evaluate", watch=True)
  elif "evaluator" in cluster.cluster and (
      config.train.early_stopping_patience or config.train.plateau_patience
      or config.train.keep_best_checkpoint):
    raise ConfigError("with an evaluator task the training tasks do not"
                      " evaluate, so early stopping, plateau and best"
                      " checkpoints cannot run there.")
  elif config.mode == "evaluate" and cluster.is_multi_worker:
    raise ConfigError("--mode=evaluate runs in one process; unset TF_CONFIG"
                      " or give it an evaluator task.")
  try:
    source = sources.load_source(config.data)
  except sources.DataError as error:
    raise ConfigError(str(error)) from None
  config = config_lib.resolve_train_steps(config, source.num_train_examples)
  config_lib.check_profile_steps(config)
  gpu_memory = gpu_usage.choose_memory_policy(
      config.gpu_memory, processes_on_node=gpu_usage.processes_on_host(cluster),
      environ=os.environ)
  import tensorflow as tf  # After validation: importing costs seconds.
  from trainer import models
  try:
    models.resolve_builder(config.train.model)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  num_gpus = len(tf.config.list_physical_devices("GPU"))
  # An evaluator's strategy is local: it never joins the collectives.
  strategy_cluster = (cluster_lib.ClusterInfo() if cluster.is_evaluator
                      else cluster)
  kind = strategy_lib.resolve_strategy_kind(
      config.strategy, cluster=strategy_cluster, num_gpus=num_gpus,
      cpu_devices=config.cpu_devices)
  replicas = strategy_lib.count_replicas(kind, cluster=strategy_cluster,
                                         num_gpus=num_gpus,
                                         cpu_devices=config.cpu_devices)
  _check_batch(config, source, replicas)
  if config.train.jit_compile and replicas > 1 and not num_gpus:
    # Measured: XLA fails with "Trying to access resource ... located in
    # device CPU:1 from device CPU:0" on mirrored logical CPUs.
    raise ConfigError("--jit_compile needs GPUs or a single replica; XLA"
                      " cannot place variables of logical CPU devices.")
  checkpoints = os.path.join(config.train.model_dir, "checkpoints")
  if (config.mode == "evaluate" and not config.watch
      and tf.train.latest_checkpoint(checkpoints) is None):
    raise ConfigError(f"--mode=evaluate found no checkpoint in {checkpoints}.")
  return Plan(config, cluster, source, kind, replicas, gpu_memory, num_gpus)


def _check_batch(config: config_lib.RunConfig, source,
                 replicas: int) -> None:
  """Checks the batch and labels against the replicas and the loss."""
  batch = config.data.global_batch_size
  if batch % replicas:
    raise ConfigError(f"--global_batch_size={batch} does not divide over the"
                      f" {replicas} replicas; use a multiple of {replicas}.")
  micro = config.train.accumulate_steps
  if (batch // replicas) % micro:
    raise ConfigError(f"the per-replica batch ({batch // replicas}) does not"
                      f" split into --accumulate_steps={micro} micro-batches.")
  _check_outputs(config.train, source)
  if batch // replicas > source.num_train_examples:
    raise ConfigError(f"the per-replica batch ({batch // replicas}) is larger"
                      f" than {source.name}'s {source.num_train_examples}"
                      " training examples.")


def _check_outputs(train, source) -> None:
  """The losses must match the dataset's labels (one per output)."""
  classes = source.num_classes
  if train.output_losses:
    outputs = {name for name, _ in train.output_losses}
    if not isinstance(classes, dict) or set(classes) != outputs:
      raise ConfigError(
          f"--loss names the outputs {', '.join(sorted(outputs))}, but"
          f" {source.name}'s labels are "
          f"{', '.join(sorted(classes)) if isinstance(classes, dict) else 'one array'}.")
    losses = dict(train.output_losses)
  elif isinstance(classes, dict):
    raise ConfigError(f"{source.name} has the outputs"
                      f" {', '.join(sorted(classes))}; give one loss per"
                      " output, e.g. --loss=name:loss,name:loss.")
  else:
    losses, classes = {"": train.loss}, {"": classes}
  for name, loss in losses.items():
    if loss == "binary_crossentropy" and classes[name] != 2:
      raise ConfigError(f"binary_crossentropy needs 2 classes, but"
                        f" {source.name}{' ' + name if name else ''} has"
                        f" {classes[name]}.")


def _build_writer(plan: Plan, *, is_writer: bool):
  """Heartbeat for every task; TensorBoard, jsonl and progress for `is_writer`."""
  from trainer import summaries
  writers = []
  if plan.config.heartbeat_file:
    writers.append(summaries.HeartbeatWriter(plan.config.heartbeat_file))
  if is_writer:
    model_dir = plan.config.train.model_dir
    writers += [
        summaries.TensorBoardWriter(
            os.path.join(model_dir, "summaries"),
            hparams=_hparams(plan) if plan.config.mode == "train" else None),
        summaries.JsonlWriter(os.path.join(model_dir, "metrics.jsonl")),
        summaries.CsvWriter(os.path.join(model_dir, "metrics.csv")),
    ]
    progress = plan.config.progress
    if progress == "auto":
      progress = "bar" if sys.stderr.isatty() else "log"
    if progress == "bar":
      from trainer import progress as progress_lib
      writers.append(progress_lib.ProgressBar(plan.config.train.train_steps))
    elif progress == "log":
      writers.append(summaries.ProgressLogger(plan.config.train.train_steps))
  return summaries.MultiWriter(writers)


def _hparams(plan: Plan) -> dict:
  """The run's settings for TensorBoard's HParams tab."""
  config, train = plan.config, plan.config.train
  names = ("model", "optimizer", "learning_rate", "lr_schedule", "loss",
           "l2", "dropout", "mixed_precision", "clip_norm",
           "accumulate_steps", "train_steps", "steps_per_loop")
  return {**{name: getattr(train, name) for name in names},
          "dataset": config.data.name,
          "global_batch_size": config.data.global_batch_size,
          "seed": config.seed, "strategy": plan.strategy_kind,
          "replicas": plan.num_replicas}


def _set_up(plan: Plan, model_class):
  """Strategy, seeds, model and checkpointer: common to train and evaluate."""
  import tensorflow as tf
  from trainer import build, checkpointing
  from trainer import model as model_lib

  config = plan.config
  deadline = 0.0
  if plan.strategy_kind == "multi_worker":
    started = time.monotonic()
    rendezvous.meet(plan.cluster, timeout=config.startup_timeout)
    if config.startup_timeout:
      deadline = max(1.0, config.startup_timeout
                     - (time.monotonic() - started))
      # The backstop below cannot print when it fires: say it beforehand.
      logging.info("All workers met; forming TensorFlow's cluster (this"
                   " worker exits 1 if that takes over %.0f s).", deadline)
  with liveness.hard_deadline(deadline):
    strategy = strategy_lib.build_strategy(
        plan.strategy_kind, cluster=plan.cluster,
        cpu_devices=config.cpu_devices, gpu_memory=plan.gpu_memory,
        jit_compile=config.train.jit_compile)
  tf.keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  # TensorFlow's Python INFO lines (saver sharding, signature renames) are noise.
  tf.get_logger().setLevel("WARNING")
  try:  # Before anything is written: a network that cannot be built is
    # bad input (e.g. --model=functional on one-input data).
    model = build.build_model(config.train, strategy,
                              input_shape=plan.source.input_shape,
                              num_classes=plan.source.num_classes,
                              model_class=model_class or model_lib.Model)
  except (ValueError, TypeError) as error:
    text = str(error).strip().splitlines()
    raise ConfigError(f"cannot build --model={config.train.model}: "
                      f"{text[0] if text else type(error).__name__}") from None
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
  checkpointer = checkpointing.Checkpointer(
      checkpointing.build_checkpoint(model, step), step,
      directory=os.path.join(config.train.model_dir,
                             checkpointing.CHECKPOINT_SUBDIR),
      is_chief=plan.cluster.is_chief and config.mode == "train",
      max_to_keep=config.train.keep_checkpoints)
  return strategy, model, checkpointer


def _eval_input(plan: Plan):
  """(dataset_fn, steps) of the eval split for this task's strategy."""
  from datasets import inputs
  pipelines = (plan.cluster.num_workers if plan.strategy_kind == "multi_worker"
               else 1)
  return inputs.eval_input(plan.source, plan.config.data,
                           num_input_pipelines=pipelines)


def execute(plan: Plan, *, model_class=None, hooks=()) -> dict[str, float]:
  """Runs the planned training or evaluation; returns the final eval logs.

  Must be the first thing in the process to use TensorFlow ops.

  Args:
    plan: The validated plan.
    model_class: Optional `trainer.model.Model` subclass to train instead
      of the default one (a user's `train_step`).
    hooks: `trainer.actions.Action`s called after every train loop and
      evaluation (training only).

  Returns:
    The final eval logs plus "step", the step they were taken at.
  """
  guard, dog = liveness.build_guard(
      is_multi_worker=plan.strategy_kind == "multi_worker",
      timeout=plan.config.collective_timeout)
  try:
    if plan.config.mode == "evaluate":
      return _evaluate(plan, model_class)
    # From the start: a stop signal during start-up ends the process at once.
    with preemption.StopSignals() as stop_signals:
      return _train(plan, model_class, hooks, guard, stop_signals)
  finally:
    if dog is not None:
      dog.close()


def _build_actions(plan: Plan, model, checkpointer, hooks):
  """Early stopping, plateau and best checkpoint as the flags ask, + hooks."""
  from trainer import actions
  config = plan.config.train
  monitor = dict(monitor=config.monitor, mode=config.monitor_mode)
  built = list(hooks)
  if config.keep_best_checkpoint:
    best = checkpointer.sibling(
        os.path.join(config.model_dir, "best_checkpoint"))
    built.append(actions.BestCheckpoint(checkpointer=best, **monitor))
  if config.plateau_patience:
    built.append(actions.ReduceLROnPlateau(
        optimizer=model.optimizer, factor=config.plateau_factor,
        patience=config.plateau_patience, min_lr=config.plateau_min_lr,
        **monitor))
  if config.early_stopping_patience:
    built.append(actions.EarlyStopping(
        model=model.network, patience=config.early_stopping_patience,
        restore_best_weights=config.restore_best_weights, **monitor))
  return built


def _train(plan: Plan, model_class, hooks, guard,
           stop_signals: preemption.StopSignals) -> dict[str, float]:
  from datasets import inputs
  from trainer import export, loop, runner

  config, source = plan.config, plan.source
  train_config = config.train
  strategy, model, checkpointer = _set_up(plan, model_class)
  if plan.cluster.is_chief:
    os.makedirs(train_config.model_dir, exist_ok=True)
    config_lib.write_config(config)
  start_step = checkpointer.restore_latest()

  batch = config.data.global_batch_size
  # With an evaluator task in the cluster, it evaluates; training does not.
  has_sidecar = "evaluator" in plan.cluster.cluster
  eval_dataset_fn, eval_steps = _eval_input(plan)
  train_runner = runner.Runner(
      strategy=strategy, model=model,
      train_dataset_fn=inputs.train_dataset_fn(source, config.data,
                                               start_step=start_step),
      eval_dataset_fn=None if has_sidecar else eval_dataset_fn,
      eval_steps=eval_steps,
      eval_steps_per_call=train_config.steps_per_loop,
      jit_compile=train_config.jit_compile, guard=guard,
      input_options=_input_options(plan))
  writer = _build_writer(plan, is_writer=plan.cluster.is_chief)
  controller = loop.Controller(
      runner=train_runner, checkpointer=checkpointer, writer=writer,
      config=loop.LoopConfig(
          train_steps=train_config.train_steps,
          steps_per_loop=train_config.steps_per_loop,
          eval_every=train_config.eval_every,
          checkpoint_every=train_config.checkpoint_every,
          global_batch_size=batch,
          profile_steps=train_config.profile_steps,
          profile_dir=(os.path.join(train_config.model_dir, "summaries",
                                    "train")
                       if plan.cluster.is_chief else "")),
      stop_requested=lambda: train_runner.agree(stop_signals.is_set()),
      actions=_build_actions(plan, model, checkpointer, hooks))
  try:
    stop_signals.training_started()
    logs = controller.run(start_step)
    export.export_model(model.network, os.path.join(train_config.model_dir,
                                                    "export"),
                        is_chief=plan.cluster.is_chief,
                        metadata=dict(_export_metadata(plan),
                                      step=controller.last_step))
  finally:
    writer.close()
  logging.info("Done at step %d.", controller.last_step)
  return dict(logs, step=controller.last_step)


def _input_options(plan: Plan):
  """Copy batches to the GPUs ahead of the step; defaults on CPUs."""
  placement = gpu_usage.choose_input_placement(num_gpus=plan.num_gpus)
  if placement.description:
    logging.info("%s", placement.description)
  return gpu_usage.build_input_options(placement)


def _export_metadata(plan: Plan) -> dict:
  """What `python -m launch.predict` needs to feed raw features."""
  source, train = plan.source, plan.config.train
  return {"dataset": source.name, "feature_scale": source.feature_scale,
          "input_shape": source.input_shape, "num_classes": source.num_classes,
          "loss": train.loss, "from_logits": train.from_logits}


def _evaluate(plan: Plan, model_class) -> dict[str, float]:
  """Evaluates the latest checkpoint, or every new one with --watch."""
  from trainer import evaluator, runner

  config = plan.config
  strategy, model, checkpointer = _set_up(plan, model_class)
  eval_dataset_fn, eval_steps = _eval_input(plan)
  eval_runner = runner.Runner(
      strategy=strategy, model=model, train_dataset_fn=None,
      eval_dataset_fn=eval_dataset_fn, eval_steps=eval_steps,
      eval_steps_per_call=config.train.steps_per_loop,
      input_options=_input_options(plan))
  os.makedirs(config.train.model_dir, exist_ok=True)
  writer = _build_writer(plan, is_writer=True)
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
  return dict(logs, step=step)
