"""What a run records: metric writers for files, TensorBoard and display.

The chief writes TensorBoard, metrics.jsonl and metrics.csv (evaluate.csv
for `--mode=evaluate`) and draws the progress; every worker keeps the
history and its heartbeat.
"""

import sys

from launch.run import plan as plan_lib
from trainer import layout


def build_writer(plan: plan_lib.Plan, *, is_writer: bool, history,
                  start_step: int = 0, model=None):
  """Heartbeat and history everywhere; files and progress on `is_writer`."""
  from trainer import summaries
  writers = [history]
  if plan.config.heartbeat_file:
    writers.append(summaries.HeartbeatWriter(plan.config.heartbeat_file))
  if is_writer:
    paths = layout.ModelDir(plan.config.train.model_dir)
    writers += [
        _tensorboard_writer(plan, model),
        summaries.JsonlWriter(paths.metrics_jsonl),
        summaries.CsvWriter(paths.metrics_csv, start_step=start_step)
        if plan.config.mode == "train" else
        summaries.CsvWriter(paths.evaluate_csv, start_step=None,
                            eval_prefix=""),
    ]
    writers += _progress_writers(plan, start_step)
  return summaries.MultiWriter(writers)


def _progress_writers(plan: plan_lib.Plan, start_step: int) -> list:
  """The chief's display: a bar on a terminal, else a line per loop."""
  from trainer import summaries
  progress, total = plan.config.progress, plan.config.train.train_steps
  if progress == "auto":
    progress = "bar" if sys.stderr.isatty() else "log"
  if progress == "bar":
    from trainer import progress as progress_lib
    return [progress_lib.ProgressBar(total, start_step=start_step)]
  if progress == "log":
    return [summaries.ProgressLogger(total, start_step=start_step)]
  return []


def _tensorboard_writer(plan: plan_lib.Plan, model):
  """Scalars; training (`model` given) adds HParams, model text and graph."""
  from trainer import model_summary, tensorboard, user_models
  paths = layout.ModelDir(plan.config.train.model_dir)
  if plan.config.mode != "train" or model is None:
    return tensorboard.TensorBoardWriter(paths.summaries)
  return tensorboard.TensorBoardWriter(
      paths.summaries, hparams=_hparams(plan, model),
      trial_id=plan.config.train.model_dir,
      metric_groups=_metric_groups(plan),
      model_summary=model_summary.describe(user_models.network_of(model)),
      trace_graph=True)


def _metric_groups(plan: plan_lib.Plan) -> tuple:
  """Splits the HParams tab scores on; an evaluator task writes "evaluate"."""
  if "evaluator" in plan.cluster.cluster:
    return ("train", "evaluate")
  return ("train", "eval") if plan.eval_source is not None else ("train",)


def _hparams(plan: plan_lib.Plan, model) -> dict:
  """The run's settings for TensorBoard's HParams tab.

  The options marked as hparams (`Option.hparam`) that apply to this
  model, with what the run resolved (the data's name, the strategy) and,
  for a compiled model, what compile() chose.
  """
  from launch.options import definitions as options_lib
  from trainer import tensorboard, user_models
  is_compiled = user_models.is_compiled(model)
  values = options_lib.hparams(plan.config, is_built_in=plan.model_fn is None,
                               is_compiled=is_compiled)
  model_name = plan.config.train.model
  if plan.model_fn is not None and ":" not in model_name:  # Given in Python.
    model_name = (f"{getattr(plan.model_fn, '__module__', '?')}:"
                  f"{getattr(plan.model_fn, '__qualname__', '?')}")
  values.update(model=model_name, dataset=plan.train_source.name,
                strategy=plan.strategy_kind, replicas=plan.num_replicas)
  if is_compiled:
    values.update(tensorboard.compiled_model_hparams(model))
  return values
