"""What the chief shows in a terminal: one redrawn bar, and permanent lines.

The bar is redrawn in place with `\\r` after every train loop and eval call,
cut to the terminal's width so it never wraps (a wrapped line leaves a stale
row at every redraw):

  step 300/1000 [=====>........]  30% loss 0.1234 | 18,354 ex/s | ETA 0:38

Every evaluation leaves one permanent line with the train means since the
previous one and the `val_` metrics, as Keras leaves one per epoch:

  step 250/1000 - loss 0.1588 - accuracy 0.9609 - val_loss 0.1309 - ...

Log lines go through `TERMINAL.write_line`, which clears the bar, writes the
line and redraws the bar below it, so no log line is glued onto the bar.
`python -m launch` uses the bar when stderr is a TTY (progress "auto") and
one log line per loop otherwise, so log files never fill with redraws.
"""

import math
import os
import shutil
import sys
import threading
from typing import TextIO

from absl import logging

from trainer import writers

_BAR_WIDTH = 24
_CLEAR = "\r\x1b[K"  # Carriage return, erase to the end of the line.


def _bar(done: int, total: int, width: int = _BAR_WIDTH) -> str:
  filled = width * done // max(total, 1)
  arrow = ">" if filled < width else ""
  return ("=" * filled + arrow).ljust(width, ".")[:width]


def _columns(stream: TextIO) -> int:
  """The width of `stream`'s terminal, read at every draw (resizes)."""
  try:
    return os.get_terminal_size(stream.fileno()).columns or 80
  except (AttributeError, OSError, ValueError):
    return shutil.get_terminal_size((80, 24)).columns


def _wrap(line: str, width: int, separator: str = " - ") -> str:
  """Breaks a ` - `-separated line before a part that would pass `width`."""
  rows, parts = [], line.split(separator)
  row = parts[0]
  for part in parts[1:]:
    if len(row) + len(separator) + len(part) > width:
      rows.append(row)
      row = "  " + part
    else:
      row += separator + part
  return "\n".join(rows + [row])


class Terminal:
  """Owns the cursor's line: a transient bar under permanent lines."""

  def __init__(self):
    self._lock = threading.RLock()
    self._stream: TextIO | None = None  # Where the bar is drawn, if any.
    self._text = ""  # The bar's last text (redrawn after a log line).

  def draw(self, stream: TextIO, text: str) -> None:
    """Draws `text` as the bar, cut to the terminal's width."""
    with self._lock:
      self._stream, self._text = stream, text
      stream.write(_CLEAR + text[:max(_columns(stream) - 1, 1)])
      stream.flush()

  def clear(self) -> None:
    """Removes the bar from the screen (it is not redrawn)."""
    with self._lock:
      if self._stream is not None:
        self._stream.write(_CLEAR)
        self._stream.flush()
      self._stream, self._text = None, ""

  def write_line(self, stream: TextIO, line: str) -> None:
    """Writes a permanent line above the bar and redraws the bar."""
    with self._lock:
      drawn = self._stream is not None and _same_stream(self._stream, stream)
      if drawn:
        stream.write(_CLEAR)
      stream.write(line.rstrip("\n") + "\n")
      stream.flush()
      if drawn:
        self.draw(stream, self._text)


def _same_stream(first: TextIO, second: TextIO) -> bool:
  if first is second:
    return True
  try:
    return first.fileno() == second.fileno()
  except (AttributeError, OSError, ValueError):
    return False


TERMINAL = Terminal()


class _ProgressWriter(writers.MetricWriter):
  """What the bar and the log share: epoch means, rollbacks and the ETA.

  A train loop's scalars go to `_show_loop(step, scalars, eta_seconds)`;
  an evaluation's line (the epoch's train means and its metrics) to
  `_show_epoch(line)`.
  """

  def __init__(self, total_steps: int, start_step: int):
    self._total = total_steps
    self._means = writers.EpochMeans(start_step)

  def write(self, split, step, scalars):
    if split == writers.RECOVERY_SPLIT:  # The controller logs the line.
      self._means.roll_back(int(scalars["restored_step"]))
      return
    if split == "train":
      self._means.add(step, scalars)
      steps_per_sec = scalars.get("steps_per_sec", 0.0)
      self._show_loop(step, scalars, (self._total - step) / steps_per_sec
                      if steps_per_sec else math.inf)
    else:
      self._show_epoch(writers.epoch_line(
          step, self._total, self._means.take(), scalars, split=split))

  def _show_loop(self, step: int, scalars: dict, eta_seconds: float):
    raise NotImplementedError

  def _show_epoch(self, line: str):
    raise NotImplementedError


class ProgressBar(_ProgressWriter):
  """Draws train and eval progress; one permanent line per evaluation."""

  def __init__(self, total_steps: int, stream: TextIO | None = None, *,
               start_step: int = 0, terminal: Terminal = TERMINAL,
               say=None):
    """Initializes the bar.

    Args:
      total_steps: The run's final step.
      stream: Where to draw (stderr).
      start_step: The step the run starts at (train means are weighted by
        the steps of each loop).
      terminal: The line owner shared with the log handler.
      say: Writes a permanent line (default: above the bar on `stream`).
    """
    super().__init__(total_steps, start_step)
    self._stream = stream or sys.stderr
    self._terminal = terminal
    self._say = say or (lambda line: terminal.write_line(
        self._stream, _wrap(line, _columns(self._stream) - 1)))

  def _show_loop(self, step, scalars, eta_seconds):
    percent = 100 * step // max(self._total, 1)
    rate = f" | {scalars.get('examples_per_sec', 0.0):,.0f} ex/s"
    eta = f" | ETA {format_seconds(eta_seconds)}"
    loss = {"loss": scalars["loss"]} if "loss" in scalars else {}
    # The richest tail that leaves the bar 10 characters on this width.
    tails = [f"] {percent:3d}% {writers.format_metrics(scalars)}"
             + rate + eta,
             f"] {percent:3d}% {writers.format_metrics(scalars)}" + eta,
             f"] {percent:3d}% {writers.format_metrics(loss)}" + eta]
    head = f"step {step}/{self._total} ["
    room = _columns(self._stream) - 1 - len(head)
    tail = next((t for t in tails if room - len(t) >= 10), tails[-1])
    self._draw_fitted(head, tail, step, self._total)

  def _show_epoch(self, line):
    self._terminal.clear()
    self._say(line)

  def _draw_fitted(self, head: str, tail: str, done: int, total: int):
    """head + bar + tail; the bar shrinks (to nothing) to fit the width."""
    room = _columns(self._stream) - 1 - len(head) - len(tail)
    width = min(_BAR_WIDTH, room)
    if width >= 5:
      text = head + _bar(done, total, width) + tail
    else:
      text = head.rstrip(" [") + tail.lstrip("]")
    self._terminal.draw(self._stream, text)

  def progress(self, split, done, total):
    self._draw_fitted(f"{split} {done}/{total} [", "]", done, total)

  def close(self):
    self._terminal.clear()
    # Loops since the last evaluation (or a run without eval data): their
    # means make the last line, as in the log.
    if self._means.pending:
      step = self._means.step
      self._say(writers.epoch_line(step, self._total, self._means.take(),
                                     {}))


def format_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else (
      f"{minutes}:{seconds:02d}")


class ProgressLogger(_ProgressWriter):
  """Logs one line per train loop (with ETA) and one per evaluation."""

  def __init__(self, total_steps: int, *, start_step: int = 0):
    super().__init__(total_steps, start_step)

  def _show_loop(self, step, scalars, eta_seconds):
    logging.info("step %d/%d %s | %s ex/s | ETA %s", step, self._total,
                 writers.format_metrics(scalars),
                 f"{scalars.get('examples_per_sec', 0.0):,.0f}",
                 format_seconds(eta_seconds))

  def _show_epoch(self, line):
    logging.info("%s", line)
