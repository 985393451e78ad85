"""Metric writers: TensorBoard and metrics.jsonl for the chief, progress logs.

Every writer takes `(split, step, scalars)`; the loop does not know where the
numbers go. Non-chief workers get a `NullWriter`.
"""

import abc
from collections.abc import Mapping, Sequence
import csv
import json
import math
import os
import time

from absl import logging
import tensorflow as tf

Scalars = Mapping[str, float]


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


class TensorBoardWriter(MetricWriter):
  """One event-file directory per split under `logdir` (e.g. train/, eval/)."""

  def __init__(self, logdir: str, hparams: Mapping[str, object] | None = None):
    """Initializes the writer.

    Args:
      logdir: The run's summary directory.
      hparams: Written once for TensorBoard's HParams tab (values bool, int,
        float or str; others as their str).
    """
    self._logdir = logdir
    self._writers: dict[str, tf.summary.SummaryWriter] = {}
    if hparams:
      from tensorboard.plugins.hparams import api as hparams_api
      values = {name: value if isinstance(value, (bool, int, float, str))
                else str(value) for name, value in hparams.items()}
      with self._writer("train").as_default(step=0):
        hparams_api.hparams(values)
      self._writers["train"].flush()

  def _writer(self, split: str) -> tf.summary.SummaryWriter:
    if split not in self._writers:
      self._writers[split] = tf.summary.create_file_writer(
          os.path.join(self._logdir, split))
    return self._writers[split]

  def write(self, split, step, scalars):
    with self._writer(split).as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)
    self._writers[split].flush()

  def close(self):
    for writer in self._writers.values():
      writer.close()


class JsonlWriter(MetricWriter):
  """Appends one JSON object per write: {"split", "step", "time", scalars}."""

  def __init__(self, path: str):
    self._path = path

  def write(self, split, step, scalars):
    record = {"split": split, "step": step, "time": round(time.time(), 3)}
    record.update({name: _json_number(value)
                   for name, value in scalars.items()})
    with open(self._path, "a", encoding="utf-8") as stream:
      stream.write(json.dumps(record) + "\n")


class HistoryWriter(MetricWriter):
  """Keeps the rows of metrics.jsonl in memory (on every worker)."""

  def __init__(self):
    self.rows: list[dict] = []

  def write(self, split, step, scalars):
    self.rows.append({"split": split, "step": step, **scalars})


class CsvWriter(MetricWriter):
  """`metrics.csv`: the rows of metrics.jsonl as a table (Keras CSVLogger).

  Train and eval rows have different columns, so the header is the union
  seen so far and the (small) file is rewritten atomically on each write;
  the rows of an earlier, resumed run are kept.
  """

  _FIRST = ("split", "step", "time")

  def __init__(self, path: str):
    self._path = path
    self._rows = []
    if os.path.exists(path):
      with open(path, newline="", encoding="utf-8") as stream:
        self._rows = list(csv.DictReader(stream))

  def write(self, split, step, scalars):
    row = {"split": split, "step": step, "time": round(time.time(), 3)}
    row.update({name: _json_number(value) for name, value in scalars.items()})
    self._rows.append(row)
    names = sorted({name for row in self._rows for name in row}
                   - set(self._FIRST))
    staging = self._path + ".tmp"
    with open(staging, "w", newline="", encoding="utf-8") as stream:
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
    with open(staging, "w", encoding="utf-8") as stream:
      stream.write(f"{step} {time.time():.3f}\n")
    os.replace(staging, self._path)

  def write(self, split, step, scalars):
    self.beat(step)


class ProgressLogger(MetricWriter):
  """Logs one line per train loop (with ETA) and per evaluation."""

  def __init__(self, total_steps: int):
    self._total_steps = total_steps

  def write(self, split, step, scalars):
    shown = " ".join(f"{name} {value:.4f}" for name, value in scalars.items()
                     if name not in RATE_KEYS and name != "examples")
    if split == "train":
      rate = scalars.get("steps_per_sec", 0.0)
      eta = (self._total_steps - step) / rate if rate else math.inf
      logging.info("step %d/%d %s | %s examples/s | ETA %s", step,
                   self._total_steps, shown,
                   f"{scalars.get('examples_per_sec', 0.0):,.0f}",
                   format_seconds(eta))
    else:
      logging.info("%s at step %d: %s | %d examples", split, step, shown,
                   scalars.get("examples", 0))


RATE_KEYS = ("steps_per_sec", "examples_per_sec", "learning_rate")


def _json_number(value: float | int) -> float | int | str:
  # Strict JSON has no NaN/Infinity; write them as strings "nan", "inf".
  if isinstance(value, int):
    return value
  value = float(value)
  return value if math.isfinite(value) else str(value)


def format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else (
      f"{minutes}:{seconds:02d}")
