"""A terminal progress bar for training and evaluation (chief only).

Redrawn in place with `\\r` after every train loop and every eval call:

  step 300/1000 [=======>..............]  30% loss 0.1234 | 18,354 ex/s | ETA 0:38

Meant for a terminal only: `python -m launch` uses it when stderr is a TTY
(`--progress=auto`) and the one-line-per-loop log otherwise, so logs and
files never fill with redraws.
"""

import sys
from typing import TextIO

from trainer import summaries

_WIDTH = 24


def _bar(done: int, total: int) -> str:
  filled = _WIDTH * done // max(total, 1)
  arrow = ">" if filled < _WIDTH else ""
  return ("=" * filled + arrow).ljust(_WIDTH, ".")[:_WIDTH]


class ProgressBar(summaries.MetricWriter):
  """Draws train and eval progress on one line of a terminal."""

  def __init__(self, total_steps: int, stream: TextIO | None = None):
    self._total = total_steps
    self._stream = stream or sys.stderr
    self._open = False  # Whether the cursor is on a drawn, unfinished line.
    self._width = 0

  def _draw(self, text: str, *, final: bool = False) -> None:
    padding = " " * max(self._width - len(text), 0)
    self._stream.write("\r" + text + padding + ("\n" if final else ""))
    self._stream.flush()
    self._width = 0 if final else len(text)
    self._open = not final

  def write(self, split, step, scalars):
    shown = " ".join(f"{name} {value:.4f}" for name, value in scalars.items()
                     if name not in summaries.RATE_KEYS
                     and name != "examples")
    if split == "train":
      rate = scalars.get("steps_per_sec", 0.0)
      eta = (self._total - step) / rate if rate else float("inf")
      percent = 100 * step // max(self._total, 1)
      self._draw(f"step {step}/{self._total} [{_bar(step, self._total)}]"
                 f" {percent:3d}% {shown} |"
                 f" {scalars.get('examples_per_sec', 0.0):,.0f} ex/s |"
                 f" ETA {summaries.format_seconds(eta)}",
                 final=step >= self._total)
    else:
      self._draw(f"{split} at step {step}: {shown} |"
                 f" {scalars.get('examples', 0)} examples", final=True)

  def progress(self, split, done, total):
    self._draw(f"{split} {done}/{total} [{_bar(done, total)}]")

  def close(self):
    if self._open:
      self._stream.write("\n")
      self._stream.flush()
      self._open = False
