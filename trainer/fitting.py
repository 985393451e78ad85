"""The trainer's front door: `fit` and `evaluate` a built model on sources.

Like Orbit's `Controller(trainer=, evaluator=, checkpoint_manager=)` and
Lightning's `Trainer.fit(module, datamodule)`, one call takes the parts and
runs them: a strategy, a model built in its scope, sources (objects with
`train_dataset_fn`/`eval_dataset_fn`, see `datasets.source`; `trainer` never
imports `datasets`), a `FitConfig` of plain values, and callbacks (Keras
callbacks and `trainer.callbacks.Callback`s in one list). `fit` restores the
latest checkpoint, trains to the final step with the built-in callbacks the
config asks for, evaluates, saves and exports.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
import os

from absl import logging
import tensorflow as tf

from trainer import callback_list
from trainer import checkpointing
from trainer import config as config_lib
from trainer import controller as controller_lib
from trainer import evaluator
from trainer import export
from trainer import layout
from trainer import model_summary
from trainer import recovery as recovery_lib
from trainer import runner as runner_lib
from trainer import storage
from trainer import user_models
from trainer import watchdog
from trainer import writers


@dataclasses.dataclass(frozen=True, kw_only=True)
class FitConfig:
  """What `fit` and `evaluate` need besides the model, data and callbacks.

  Attributes:
    train: The model's, the loop's and the built-in callbacks' settings.
    global_batch_size: Examples per step over all replicas.
    seed: Seed of the training data's order.
    is_chief: Whether this task writes checkpoints, summaries and the
      export.
    is_multi_worker: Whether other workers train with this one (every
      stop decision is then agreed between them).
    num_input_pipelines: Input pipelines of the run (one per worker).
    evaluator_task: Whether an evaluator task evaluates the checkpoints;
      the training tasks then do not evaluate.
    heartbeat_file: Touched at every loop ("" for none).
    progress: The chief's display: "bar", "log" (a line per loop) or
      "none".
    hparams: The run's settings for TensorBoard's HParams tab.
    task: "classification", "regression" or "auto" (said in the export's
      metadata and the logs).
    watch: `evaluate`: every new checkpoint until the final step, not just
      the latest.
    eval_timeout: `evaluate` with `watch`: seconds to wait for a new one.
    rate_changed_at: The step from which the learning rate's settings
      changed (-1: never): restoring a checkpoint of that step or older,
      the configured rate replaces its rate (else a float rate is
      restored, with a plateau's reductions).
  """

  train: config_lib.TrainConfig
  global_batch_size: int
  seed: int = 0
  is_chief: bool = True
  is_multi_worker: bool = False
  num_input_pipelines: int = 1
  evaluator_task: bool = False
  heartbeat_file: str = ""
  progress: str = "log"
  hparams: Mapping[str, object] = dataclasses.field(default_factory=dict)
  task: str = "auto"
  watch: bool = False
  eval_timeout: float = 0.0
  rate_changed_at: int = -1


@dataclasses.dataclass(frozen=True)
class FitResult:
  """What `fit` and `evaluate` give back.

  Attributes:
    model: The trained network (what the export holds).
    logs: The final evaluation ("loss", metrics, "examples"; empty without
      eval data).
    history: The train and eval rows written to metrics.jsonl.
    step: The step training (or the evaluated checkpoint) ended at.
  """

  model: object
  logs: dict
  history: list
  step: int


def resume_step(model_dir: str) -> int:
  """The step `fit` resumes from unless that checkpoint fails to restore.

  Read from the checkpoint files' names (their number is the step), so a
  training pipeline built for it before the model (for a batch's spec) is
  the one `fit` uses.
  """
  found = checkpointing.list_checkpoints(layout.ModelDir(model_dir).checkpoints)
  return found[-1][0] if found else 0


def _checkpointer(model, config: FitConfig, *, is_chief: bool):
  step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
  return checkpointing.Checkpointer(
      checkpointing.build_checkpoint(model, step), step,
      directory=layout.ModelDir(config.train.model_dir).checkpoints,
      is_chief=is_chief, max_to_keep=config.train.keep_checkpoints,
      optimizer=getattr(model, "optimizer", None),
      rate_changed_at=config.rate_changed_at)


def _eval_input(eval_data, model, config: FitConfig):
  """(dataset_fn, steps) of the eval data, or (None, 0)."""
  if eval_data is None:
    return None, 0
  # A compiled model's own test_step averages the loss per batch, so it
  # gets every example once and no padding (see datasets' eval_dataset_fn).
  return eval_data.eval_dataset_fn(
      global_batch_size=config.global_batch_size,
      num_input_pipelines=config.num_input_pipelines,
      padded=not user_models.is_compiled(model))


def _log_start(model, train_data, eval_data, config: FitConfig,
               start_step: int) -> None:
  """Where the run starts, its data, task and network (the chief's log)."""
  train = config.train
  if not config.is_chief:
    return
  if start_step >= train.train_steps:
    logging.warning(
        "%s is complete at step %d (train_steps=%d): this run only evaluates"
        " its final checkpoint. Raise train_steps above %d to train on, or"
        " use a new model_dir to start over.",
        train.model_dir, start_step, train.train_steps, start_step)
  if 0 < start_step < train.train_steps:
    logging.info("Resuming from step %d of %d.", start_step,
                 train.train_steps)
  for role, source in (("Train", train_data), ("Eval", eval_data)):
    if source is not None:
      logging.info("%s data: %s.", role, source.description.rstrip("."))
  if config.task != "auto":
    logging.info("Task: %s (%s).", config.task,
                 "loss and metrics of compile()"
                 if user_models.is_compiled(model) else
                 f"loss {train.loss}, metrics {', '.join(train.metrics)}")


def _metric_groups(config: FitConfig, eval_data) -> tuple:
  """Splits the HParams tab scores on; an evaluator task writes "evaluate"."""
  if config.evaluator_task:
    return ("train", "evaluate")
  return ("train", "eval") if eval_data is not None else ("train",)


def fit(*, strategy: tf.distribute.Strategy, model, train_data,
        eval_data=None, config: FitConfig, callbacks: Sequence = (),
        guard=watchdog.unguarded, input_options=None,
        stop_requested: Callable[[], bool] = lambda: False,
        on_training_started: Callable[[], None] = lambda: None
        ) -> FitResult:
  """Trains `model` from its latest checkpoint, evaluates, exports.

  Args:
    strategy: The strategy the model was built in.
    model: The model to train (`trainer.build.build_model`, or
      `trainer.user_models.build_user_model`), its optimizer built.
    train_data: A source with `train_dataset_fn`, `description`, and the
      attributes the export's metadata reads (`name`, `input_shape`,
      `num_classes`, ...).
    eval_data: A source with `eval_dataset_fn`, or None.
    config: The run's settings.
    callbacks: Keras callbacks and `trainer.callbacks.Callback`s (checked
      by `check_callbacks` beforehand).
    guard: `guard(what)` around every compiled call (a watchdog in
      multi-worker runs).
    input_options: `tf.distribute.InputOptions` of the pipelines, or None.
    stop_requested: Polled at every loop boundary (a stop signal).
    on_training_started: Called just before the first loop.

  Returns:
    The trained network, the final evaluation, the history and the step.

  Raises:
    controller.StopRequested: `stop_requested` said so; saved first.
    KeyboardInterrupt: A callback raised it; saved first.
    controller.NonFiniteLossError: The loss became NaN or infinite.
    checkpointing.CheckpointError: No checkpoint of model_dir restores.
    storage.StorageError: model_dir (or the heartbeat's or scratch
      directory) ran out of space, turned read-only or was removed; the
      last complete checkpoint is intact.
  """
  try:
    return _fit(strategy=strategy, model=model, train_data=train_data,
                eval_data=eval_data, config=config, callbacks=callbacks,
                guard=guard, input_options=input_options,
                stop_requested=stop_requested,
                on_training_started=on_training_started)
  except Exception as error:  # pylint: disable=broad-except
    _raise_if_storage_fault(error, config)
    raise


def _raise_if_storage_fault(error: Exception, config: FitConfig) -> None:
  """A full, read-only or removed directory of the run: one sentence."""
  fault = storage.describe(error, (
      config.train.model_dir, storage.file_dir(config.heartbeat_file),
      storage.scratch_root() if not config.is_chief else ""))
  if fault is not None:
    raise fault from None


def _fit(*, strategy, model, train_data, eval_data, config: FitConfig,
         callbacks, guard, input_options, stop_requested,
         on_training_started) -> FitResult:
  train = config.train
  paths = layout.ModelDir(train.model_dir)
  checkpointer = _checkpointer(model, config, is_chief=config.is_chief)
  start_step = checkpointer.restore_latest()
  _log_start(model, train_data, eval_data, config, start_step)
  if config.is_chief:
    model_summary.log(user_models.network_of(model))
  eval_dataset_fn, eval_steps = _eval_input(eval_data, model, config)
  runner = runner_lib.Runner(
      strategy=strategy, model=model,
      train_dataset_fn=train_data.train_dataset_fn(
          global_batch_size=config.global_batch_size, seed=config.seed,
          start_step=start_step),
      eval_dataset_fn=None if config.evaluator_task else eval_dataset_fn,
      eval_steps=eval_steps, eval_steps_per_call=train.steps_per_loop,
      jit_compile=train.jit_compile, guard=guard,
      input_options=input_options)
  history = writers.HistoryWriter()
  writer = writers.build_writer(
      model_dir=train.model_dir, is_writer=config.is_chief, history=history,
      train_steps=train.train_steps, heartbeat_file=config.heartbeat_file,
      progress=config.progress, start_step=start_step, model=model,
      hparams=config.hparams,
      metric_groups=_metric_groups(config, eval_data))
  # Every worker's answer to a question.
  agree = runner.agree if config.is_multi_worker else bool
  recovery = recovery_lib.Recovery(
      model=model, checkpointer=checkpointer, strategy=strategy,
      max_retries=train.nan_retries, is_chief=config.is_chief,
      restart_data=lambda step: runner.restart_train_data(
          train_data.train_dataset_fn(
              global_batch_size=config.global_batch_size, seed=config.seed,
              start_step=step)),
      agree=agree)
  recovery.resume(start_step)
  controller = controller_lib.Controller(
      runner=runner, checkpointer=checkpointer, writer=writer,
      config=controller_lib.LoopConfig(
          train_steps=train.train_steps,
          steps_per_loop=train.steps_per_loop, eval_every=train.eval_every,
          checkpoint_every=train.checkpoint_every,
          global_batch_size=config.global_batch_size,
          profile_steps=train.profile_steps,
          profile_dir=(paths.split_summaries("train") if config.is_chief
                       else "")),
      stop_requested=stop_requested, agree=agree,
      callbacks=[*callback_list.build_callbacks(model, callbacks, config,
                                                checkpointer, agree),
                 *([callback_list.divergence_warning(train_data, model,
                                                     config)]
                   if config.is_chief else [])],  # One run, one warning.
      recovery=recovery)
  try:
    on_training_started()
    logs = controller.run(start_step)
    recovery.finish()
    network = user_models.network_of(model)
    export.export_model(network, paths.export, is_chief=config.is_chief,
                        metadata=dict(export_metadata(train_data, model,
                                                      config),
                                      step=controller.last_step))
  finally:
    writer.close()
  logging.info("Done at step %d.", controller.last_step)
  return FitResult(network, logs, history.rows, controller.last_step)


def evaluate(*, strategy: tf.distribute.Strategy, model, eval_data,
             config: FitConfig, input_options=None) -> FitResult:
  """Evaluates the latest checkpoint, or every new one with `config.watch`.

  Args:
    strategy: The strategy the model was built in.
    model: The model whose checkpoints model_dir holds.
    eval_data: A source with `eval_dataset_fn`.
    config: The run's settings (`watch`, `eval_timeout`).
    input_options: `tf.distribute.InputOptions` of the pipeline, or None.

  Returns:
    The network, the last evaluation, the history and the checkpoint's
    step.

  Raises:
    evaluator.NoCheckpointError: There is no checkpoint to evaluate.
    TimeoutError: With `watch`, no new checkpoint came in time.
  """
  try:
    return _evaluate(strategy=strategy, model=model, eval_data=eval_data,
                     config=config, input_options=input_options)
  except Exception as error:  # pylint: disable=broad-except
    _raise_if_storage_fault(error, config)
    raise


def _evaluate(*, strategy, model, eval_data, config: FitConfig,
              input_options) -> FitResult:
  train = config.train
  checkpointer = _checkpointer(model, config, is_chief=False)
  eval_dataset_fn, eval_steps = _eval_input(eval_data, model, config)
  runner = runner_lib.Runner(
      strategy=strategy, model=model, train_dataset_fn=None,
      eval_dataset_fn=eval_dataset_fn, eval_steps=eval_steps,
      eval_steps_per_call=train.steps_per_loop, input_options=input_options)
  os.makedirs(train.model_dir, exist_ok=True)
  history = writers.HistoryWriter()
  writer = writers.build_writer(
      model_dir=train.model_dir, is_writer=True, history=history,
      train_steps=train.train_steps, heartbeat_file=config.heartbeat_file,
      progress=config.progress, start_step=None)
  try:
    if config.watch:
      step, logs = evaluator.watch_checkpoints(
          checkpointer=checkpointer, runner=runner, writer=writer,
          final_step=train.train_steps, timeout=config.eval_timeout)
    else:
      step, logs = evaluator.evaluate_latest(
          checkpointer=checkpointer, runner=runner, writer=writer)
  finally:
    writer.close()
  return FitResult(user_models.network_of(model), logs, history.rows, step)


def export_metadata(source, model, config: FitConfig) -> dict:
  """What `python -m launch.predict` needs besides the network.

  How to feed raw features, and the loss that says what the network emits
  (logits or probabilities): the model's own when it has one (compile()'s,
  or a builder's `keras.losses.Loss`), else the config's `loss` and
  `from_logits`, which built the built-in and uncompiled networks. The
  task: a regression has no class count and no `from_logits`; classes
  keep their names (`class_names`) when the data has them.
  """
  train = config.train
  metadata = {"dataset": source.name,
              "feature_scale": getattr(source, "feature_scale", 1.0),
              "input_shape": source.input_shape,
              **export.model_loss_metadata(
                  model, loss=dict(train.output_losses) or train.loss,
                  from_logits=train.from_logits)}
  if getattr(source, "input_format", None):  # Images, a CSV's columns.
    metadata["input_format"] = source.input_format
  # A compiled model's own regression loss says it, whatever the labels.
  if (config.task == "regression"
      or metadata.get("loss") in export.REGRESSION_LOSSES):
    metadata.pop("from_logits", None)
    return dict(metadata, task="regression")
  if config.task == "classification":
    metadata["task"] = "classification"
  metadata["num_classes"] = source.num_classes
  if getattr(source, "class_names", None):
    metadata["class_names"] = list(source.class_names)
  return metadata
