"""What a run records: metric writers for files, TensorBoard and display.

The chief writes TensorBoard, metrics.jsonl and metrics.csv (evaluate.csv
when it evaluates saved checkpoints) and draws the progress; every worker
keeps the history and its heartbeat.
"""

from collections.abc import Mapping, Sequence

from trainer import layout
from trainer import summaries

PROGRESS_MODES = ("bar", "log", "none")


def build_writer(*, model_dir: str, is_writer: bool,
                 history: summaries.HistoryWriter, train_steps: int,
                 heartbeat_file: str = "", progress: str = "log",
                 start_step: int | None = 0, model=None,
                 hparams: Mapping[str, object] | None = None,
                 metric_groups: Sequence[str] = ("train",)
                 ) -> summaries.MultiWriter:
  """Heartbeat and history everywhere; files and progress on `is_writer`.

  Args:
    model_dir: The run's directory (`trainer.layout.ModelDir`).
    is_writer: Whether this task writes files and the display (the chief).
    history: Keeps every row for the run's result.
    train_steps: The final step (for the progress).
    heartbeat_file: Touched at every row ("" for none).
    progress: "bar", "log" (a line per loop) or "none".
    start_step: The restored step of a training run; None when saved
      checkpoints are evaluated (evaluate.csv instead of metrics.csv).
    model: The trained model: TensorBoard adds HParams, the model's text
      and its graph (training only).
    hparams: The run's settings for the HParams tab.
    metric_groups: Splits the HParams tab scores on.

  Raises:
    ValueError: If `progress` is not one of `PROGRESS_MODES`.
  """
  if progress not in PROGRESS_MODES:
    raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)},"
                     f" not {progress!r}.")
  writers = [history]
  if heartbeat_file:
    writers.append(summaries.HeartbeatWriter(heartbeat_file))
  if is_writer:
    paths = layout.ModelDir(model_dir)
    training = start_step is not None
    writers += [
        _tensorboard_writer(model_dir, model if training else None, hparams,
                            metric_groups),
        summaries.JsonlWriter(paths.metrics_jsonl),
        summaries.CsvWriter(paths.metrics_csv, start_step=start_step)
        if training else
        summaries.CsvWriter(paths.evaluate_csv, start_step=None,
                            eval_prefix=""),
    ]
    writers += _progress_writers(progress, train_steps, start_step or 0)
  return summaries.MultiWriter(writers)


def _progress_writers(progress: str, total: int, start_step: int) -> list:
  """The chief's display: a bar, a line per loop, or nothing."""
  if progress == "bar":
    from trainer import progress as progress_lib  # pylint: disable=import-outside-toplevel
    return [progress_lib.ProgressBar(total, start_step=start_step)]
  if progress == "log":
    return [summaries.ProgressLogger(total, start_step=start_step)]
  return []


def _tensorboard_writer(model_dir: str, model, hparams, metric_groups):
  """Scalars; training (`model` given) adds HParams, model text and graph."""
  from trainer import model_summary, tensorboard, user_models  # pylint: disable=import-outside-toplevel
  paths = layout.ModelDir(model_dir)
  if model is None:
    return tensorboard.TensorBoardWriter(paths.summaries)
  return tensorboard.TensorBoardWriter(
      paths.summaries, hparams=dict(hparams or {}), trial_id=model_dir,
      metric_groups=tuple(metric_groups),
      model_summary=model_summary.describe(user_models.network_of(model)),
      trace_graph=True)
