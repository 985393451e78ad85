"""What a run records: the metric writers, and which ones a run gets.

Writers take each loop's train and eval metrics: TensorBoard (in
`trainer.tensorboard`), metrics.jsonl, metrics.csv, the progress display, the
heartbeat and the in-memory history. `build_writer` picks them: the chief
writes the files and draws the progress (evaluate.csv when it evaluates saved
checkpoints); every worker keeps the history and its heartbeat.
"""

import abc
from collections.abc import Mapping, Sequence
import csv
import json
import math
import os
import time

from trainer import layout
from trainer import storage

Scalars = Mapping[str, float]
# The split of a rollback's row (`nan_retries`): at the step of the
# non-finite loss, its "restored_step" is where training went back to.
RECOVERY_SPLIT = "recovery"


class MetricWriter(abc.ABC):
  """Receives scalars of one split ("train" or "eval") at one step."""

  @abc.abstractmethod
  def write(self, split: str, step: int, scalars: Scalars) -> None:
    """Records the scalars."""

  def close(self) -> None:
    """Flushes and releases resources."""

  def progress(self, split: str, done: int, total: int) -> None:
    """Work in progress inside a loop or evaluation (progress bars only)."""


class NullWriter(MetricWriter):

  def write(self, split, step, scalars):
    pass


class MultiWriter(MetricWriter):
  """Forwards to several writers."""

  def __init__(self, writers: Sequence[MetricWriter]):
    self._writers = list(writers)

  def write(self, split, step, scalars):
    for writer in self._writers:
      writer.write(split, step, scalars)

  def close(self):
    for writer in self._writers:
      writer.close()

  def progress(self, split, done, total):
    for writer in self._writers:
      writer.progress(split, done, total)


class JsonlWriter(MetricWriter):
  """Appends one JSON object per write: {"split", "step", "time", scalars}."""

  def __init__(self, path: str):
    self._path = path

  def write(self, split, step, scalars):
    record = {"split": split, "step": step, "time": round(time.time(), 3)}
    record.update({name: _json_number(value)
                   for name, value in scalars.items()})
    # Whole lines only: a full disk must not leave a broken row behind.
    storage.append(self._path, json.dumps(record) + "\n")


class HistoryWriter(MetricWriter):
  """Keeps the rows of metrics.jsonl in memory (on every worker)."""

  def __init__(self):
    self.rows: list[dict] = []

  def write(self, split, step, scalars):
    self.rows.append({"split": split, "step": step, **scalars})


class CsvWriter(MetricWriter):
  """One row per evaluation, as Keras's CSVLogger writes one per epoch.

  Columns: epoch (the row's number from 0), step, time, the train means of
  the loops since the previous row (Keras's epoch logs), the learning rate,
  then the evaluation's metrics with `eval_prefix` (`val_loss`, ...). Loops
  after the last evaluation (or a run without eval data) make a last row of
  train columns only (so does a run stopped by a signal, at its stop step;
  resumed, it continues that row's epoch). A resumed run keeps the earlier
  rows up to the step it resumed from; an evaluation at a row's step (a
  rerun of a complete run) updates that row.
  The (small) file is rewritten atomically on each row.
  """

  _FIRST = ("epoch", "step", "time")

  def __init__(self, path: str, *, start_step: int | None = 0,
               eval_prefix: str = "val_"):
    """Initializes the writer.

    Args:
      path: The CSV file.
      start_step: The step the run starts at: earlier rows after it are
        dropped (they are trained again). None keeps every earlier row.
      eval_prefix: Prepended to the evaluation's metric names.
    """
    self._path = path
    self._prefix = eval_prefix
    self._means = EpochMeans(start_step or 0)
    self._rows = []
    if os.path.exists(path):
      with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
      # Rows of the long format of earlier versions (split, step, ...)
      # are not kept; metrics.jsonl holds them.
      self._rows = [row for row in rows if "split" not in row and (
          start_step is None or int(row["step"]) <= start_step)]
      if start_step is not None:
        self._reopen_last_row(start_step)

  def _reopen_last_row(self, start_step: int) -> None:
    """A stopped run's last row (train columns, no evaluation) is continued.

    Its loops' means go back into the epoch, so the resumed run's next row
    covers the whole epoch, as if the run had not stopped.
    """
    if not self._rows or int(self._rows[-1]["step"]) != start_step or any(
        value for name, value in self._rows[-1].items()
        if name.startswith(self._prefix) and name not in self._FIRST):
      return
    row = self._rows.pop()
    before = int(self._rows[-1]["step"]) if self._rows else 0
    self._means.restore(
        {name: float(value) for name, value in row.items()
         if name not in self._FIRST and value != ""}, start_step - before)

  def write(self, split, step, scalars):
    if split == "train":
      self._means.add(step, scalars)
      return
    if split == RECOVERY_SPLIT:  # Rows after the restored step go.
      restored = int(scalars["restored_step"])
      self._means.roll_back(restored)
      self._rows = [row for row in self._rows if int(row["step"]) <= restored]
      return
    self._add_row(step, {
        **self._means.take(),
        **{self._prefix + name: value for name, value in scalars.items()
           if name != "examples"}})

  def close(self):
    if self._means.pending:
      self._add_row(self._means.step, self._means.take())

  def _add_row(self, step: int, values: Scalars) -> None:
    if self._rows and int(self._rows[-1]["step"]) == step:
      # Evaluated again at the same step (a rerun of a complete run).
      values = {**{name: value for name, value in self._rows.pop().items()
                   if name not in self._FIRST and value != ""}, **values}
    row = {"epoch": len(self._rows), "step": step,
           "time": round(time.time(), 3)}
    row.update({name: _json_number(value) for name, value in values.items()})
    self._rows.append(row)
    names = []
    for row in self._rows:  # Train columns first, as they first appeared.
      names += [name for name in row
                if name not in names and name not in self._FIRST]
    names.sort(key=lambda name: bool(self._prefix)
               and name.startswith(self._prefix))
    staging = self._path + ".tmp"
    with storage.named(self._path), open(staging, "w", newline="",
                                          encoding="utf-8") as stream:
      writer = csv.DictWriter(stream, fieldnames=[*self._FIRST, *names])
      writer.writeheader()
      writer.writerows(self._rows)
    os.replace(staging, self._path)


class HeartbeatWriter(MetricWriter):
  """Records the latest step in a file, so a supervisor can see progress.

  Every worker writes one (the chief-only writers stay quiet elsewhere); the
  file's content is "<step> <unix time>" and its mtime is the heartbeat.
  """

  def __init__(self, path: str):
    self._path = path
    self.beat(0)

  def beat(self, step: int) -> None:
    staging = self._path + ".tmp"
    with storage.named(self._path), open(staging, "w",
                                          encoding="utf-8") as stream:
      stream.write(f"{step} {time.time():.3f}\n")
    os.replace(staging, self._path)

  def write(self, split, step, scalars):
    self.beat(step)


class EpochMeans:
  """Step-weighted means of the train loops since the last `take`.

  What Keras reports at the end of an epoch: each metric's mean over the
  epoch's steps (a loop's values are its means over its steps), and the
  latest learning rate. The loops are kept, so that a rollback
  (`roll_back`) forgets those after the restored step.
  """

  def __init__(self, start_step: int = 0):
    self.step = start_step  # The step of the latest loop.
    self._loops: list[tuple[int, int, dict]] = []  # (end, steps, scalars)
    self._taken: list[int] = []  # len(_loops) at each `take`.

  @property
  def _epoch(self) -> list[tuple[int, int, dict]]:
    return self._loops[self._taken[-1] if self._taken else 0:]

  @property
  def pending(self) -> bool:
    """Whether loops were added since the last `take`."""
    return sum(steps for _, steps, _ in self._epoch) > 0

  def add(self, step: int, scalars: Scalars) -> None:
    steps, self.step = max(step - self.step, 0), step
    self._loops.append((step, steps, dict(scalars)))

  def restore(self, means: Scalars, steps: int) -> None:
    """Adds `steps` steps whose means were `means` (a reopened epoch)."""
    self._loops.append((self.step, steps, dict(means)))

  def roll_back(self, step: int) -> None:
    """Forgets the loops after `step` (and the takes after them)."""
    self._loops = [loop for loop in self._loops if loop[0] <= step]
    self._taken = [taken for taken in self._taken
                   if taken <= len(self._loops)]
    self.step = step

  def take(self) -> dict[str, float]:
    """The means, and starts a new epoch."""
    sums, latest, total = {}, {}, 0
    for _, steps, scalars in self._epoch:
      total += steps
      for name, value in scalars.items():
        if name == "learning_rate":
          latest[name] = value
        elif name not in RATE_KEYS:
          sums[name] = sums.get(name, 0.0) + float(value) * steps
    means = {name: value / total for name, value in sums.items()
             } if total else {}
    means.update(latest)
    self._taken.append(len(self._loops))
    return means


def format_value(value: float) -> str:
  value = float(value)
  return f"{value:.3e}" if value and abs(value) < 1e-3 else f"{value:.4f}"


def format_metrics(scalars: Scalars, sep: str = " ") -> str:
  """`loss 0.1234 accuracy 0.9876`: the metrics, without rates or counts."""
  return sep.join(f"{name} {format_value(value)}"
                  for name, value in scalars.items()
                  if name not in RATE_KEYS and name != "examples")


def epoch_line(step: int, total_steps: int, train: Scalars,
               evaluation: Scalars, *, split: str = "eval") -> str:
  """The line left per evaluation: train means and `val_` metrics.

  `step 250/1000 - loss 0.1588 - accuracy 0.9609 - val_loss 0.1309 - ...`;
  an evaluation of a saved checkpoint (`split` "evaluate") reads
  `checkpoint of step 250: loss 0.1309 - accuracy 0.9722 (360 examples)`.
  """
  if split != "eval":
    return (f"checkpoint of step {step}: "
            f"{format_metrics(evaluation, sep=' - ')}"
            f" ({evaluation.get('examples', 0)} examples)")
  parts = [f"step {step}/{total_steps}", format_metrics(train, sep=" - ")]
  parts.append(format_metrics({f"val_{name}": value
                               for name, value in evaluation.items()
                               if name != "examples"}, sep=" - "))
  return " - ".join(part for part in parts if part)


RATE_KEYS = ("steps_per_sec", "examples_per_sec", "learning_rate")


def _json_number(value: float | int) -> float | int | str:
  # Strict JSON has no NaN/Infinity; write them as strings "nan", "inf".
  if isinstance(value, int):
    return value
  value = float(value)
  return value if math.isfinite(value) else str(value)


PROGRESS_MODES = ("bar", "log", "none")


def build_writer(*, model_dir: str, is_writer: bool,
                 history: HistoryWriter, train_steps: int,
                 heartbeat_file: str = "", progress: str = "log",
                 start_step: int | None = 0, model=None,
                 hparams: Mapping[str, object] | None = None,
                 metric_groups: Sequence[str] = ("train",)
                 ) -> MultiWriter:
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
    writers.append(HeartbeatWriter(heartbeat_file))
  if is_writer:
    paths = layout.ModelDir(model_dir)
    training = start_step is not None
    writers += [
        _tensorboard_writer(model_dir, model if training else None, hparams,
                            metric_groups),
        JsonlWriter(paths.metrics_jsonl),
        CsvWriter(paths.metrics_csv, start_step=start_step)
        if training else
        CsvWriter(paths.evaluate_csv, start_step=None,
                            eval_prefix=""),
    ]
    writers += _progress_writers(progress, train_steps, start_step or 0)
  return MultiWriter(writers)


def _progress_writers(progress: str, total: int, start_step: int) -> list:
  """The chief's display: a bar, a line per loop, or nothing."""
  from trainer import progress as progress_lib  # pylint: disable=import-outside-toplevel
  if progress == "bar":
    return [progress_lib.ProgressBar(total, start_step=start_step)]
  if progress == "log":
    return [progress_lib.ProgressLogger(total, start_step=start_step)]
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
