"""Bounded waits of a multi-worker run: its watchdog and start-up deadline.

A worker blocked on a stuck peer cannot be interrupted from Python, so both
end the process with one sentence (see `trainer.watchdog`).
"""

import contextlib
import faulthandler
import os

from launch.cli.errors import fail
from launch.errors import EXIT_RUN_FAILED
from trainer import watchdog


def _report_stuck_peer(what: str, seconds: float) -> None:
  """The watchdog's verdict: one sentence, then exit (the call is blocked)."""
  fail(f"the run stopped because a peer worker failed or a collective timed"
       f" out ({what} took more than {seconds:g} s).", EXIT_RUN_FAILED,
       hard=True)


def build_guard(*, is_multi_worker: bool, timeout: float):
  """(guard, watchdog or None): guards compiled calls of multi-worker runs.

  Args:
    is_multi_worker: Whether the strategy spans processes (only then can a
      peer keep a collective waiting).
    timeout: `--collective_timeout`, seconds per compiled call (0: none).
  """
  if not is_multi_worker:
    return watchdog.unguarded, None
  dog = watchdog.Watchdog(timeout, on_expire=_report_stuck_peer)
  return dog.guard, dog


@contextlib.contextmanager
def hard_deadline(seconds: float):
  """Exits 1 if the body outlives `seconds`, even holding the GIL.

  A backstop for TensorFlow's own join, which blocks with the GIL held (so
  no Python watchdog can run); after `rendezvous.meet` it takes a fraction
  of a second unless a worker dies in between.
  """
  if not seconds:
    yield
    return
  with open(os.devnull, "w", encoding="utf-8") as sink:
    faulthandler.dump_traceback_later(seconds, exit=True, file=sink)
    try:
      yield
    finally:
      faulthandler.cancel_dump_traceback_later()
