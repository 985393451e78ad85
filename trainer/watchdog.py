"""`Watchdog`: ends a worker whose guarded call never returns.

A multi-worker collective waits for every peer. A peer that died is noticed
by TensorFlow's coordination-service heartbeats, but a peer that is alive
and stuck (a deadlock in user code, a hung filesystem, a frozen GPU) keeps
the others waiting forever. TensorFlow's own remedy,
`CommunicationOptions(timeout_seconds=T)`, starts a thread per collective
that sleeps for T seconds (TF 2.21: ~4.4 threads per MLP step with T=300,
13,000 threads after 3,000 steps, then `std::system_error` at pid_max). So
the harness guards whole calls instead — a compiled loop of many steps, an
evaluation call, a metric read, the stop agreement — with ONE thread per
process: when a guarded call outlives its deadline, the process reports it in one
sentence and exits at once (Python cannot interrupt a blocked TensorFlow op).
Every worker guards its own calls, so the stuck worker and the ones waiting
for it all end, and a supervisor or scheduler sees the group fail.
"""

from collections.abc import Callable, Iterator
import contextlib
import threading
import time


class Watchdog:
  """One daemon thread that fires when a guarded call outlives its deadline."""

  def __init__(self, timeout: float, *,
               on_expire: Callable[[str, float], None],
               clock: Callable[[], float] = time.monotonic):
    """Initializes the watchdog (its thread starts with the first guard).

    Args:
      timeout: Default seconds a guarded call may take; 0 disables guards
        that do not give their own timeout.
      on_expire: Called from the watchdog's thread as `on_expire(what,
        seconds)` when a call outlives its deadline; it normally ends the
        process (the blocked call cannot be interrupted).
      clock: Seconds; injectable for tests.
    """
    self._timeout = timeout
    self._on_expire = on_expire
    self._clock = clock
    self._condition = threading.Condition()
    self._deadline = None  # (deadline, what, seconds) of the current guard.
    self._thread = None
    self._closed = False

  @contextlib.contextmanager
  def guard(self, what: str, timeout: float | None = None) -> Iterator[None]:
    """Runs the body under a deadline of `timeout` (default: the watchdog's).

    Args:
      what: Names the call in the message, e.g. "a training loop".
      timeout: Seconds; 0 or None with a zero default: no deadline.
    """
    seconds = self._timeout if timeout is None else timeout
    if not seconds:
      yield
      return
    with self._condition:
      self._start_thread()
      previous = self._deadline
      self._deadline = (self._clock() + seconds, what, seconds)
      self._condition.notify()
    try:
      yield
    finally:
      with self._condition:
        self._deadline = previous
        self._condition.notify()

  def _start_thread(self) -> None:
    if self._thread is None:
      self._thread = threading.Thread(target=self._watch, daemon=True,
                                      name="harness-watchdog")
      self._thread.start()

  def _watch(self) -> None:
    with self._condition:
      while not self._closed:
        if self._deadline is None:
          self._condition.wait()
          continue
        deadline, what, seconds = self._deadline
        remaining = deadline - self._clock()
        if remaining > 0:
          self._condition.wait(timeout=min(remaining, 1.0))
          continue
        self._deadline = None
        self._on_expire(what, seconds)

  def close(self) -> None:
    """Stops the thread; guards after this are not watched."""
    with self._condition:
      self._closed = True
      self._condition.notify()
    if self._thread is not None:
      self._thread.join(timeout=5)


@contextlib.contextmanager
def unguarded(what: str, timeout: float | None = None) -> Iterator[None]:
  """A `guard` that watches nothing (single-process runs)."""
  del what, timeout
  yield
