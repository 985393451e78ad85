"""SIGTERM/SIGUSR1: stop at once during start-up, cleanly once training.

Slurm sends SIGUSR1 ahead of a time limit (`#SBATCH --signal=USR1@120`),
Kubernetes and most schedulers SIGTERM, and both escalate to SIGKILL after a
grace period, so a stop signal must end the process within seconds wherever
it arrives:

* During start-up (loading data, waiting for the other workers, restoring,
  tracing) nothing new exists to save: the process exits at once with
  `EXIT_PREEMPTED`, leaving the latest checkpoint as it was.
* Once training runs, the signal is a request: the loop polls it at each
  boundary, where all workers agree (an all-reduce) to save a checkpoint at
  the same step and exit with `EXIT_PREEMPTED`.

TensorFlow's C++ preemption notifier takes over SIGTERM while a
MultiWorkerMirroredStrategy waits for its peers and then swallows it
(training simply continues). So the handlers are C-level ones saved when
this context starts, and a watcher thread puts them back whenever something
else replaced them. Signals reach the watcher through Python's wakeup file
descriptor, which works while the main thread is blocked inside TensorFlow.

With `interrupt=True` (`launch.fit`, a notebook) SIGINT (Ctrl-C) is a stop
request too, once training runs: the loop saves at the next boundary and the
run raises `KeyboardInterrupt`. A second Ctrl-C raises it at once, without
saving; during start-up the first one does.
"""

import ctypes
import ctypes.util
import os
import select
import signal
import sys
import threading

from absl import logging

from launch.errors import EXIT_PREEMPTED

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_RECHECK_SECONDS = 0.2
_SIGACTION_BYTES = 512  # More than any libc's `struct sigaction`.


class _CHandlers:
  """Saves the process's C-level signal actions and puts them back."""

  def __init__(self, signums):
    self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    self._saved = {}
    for signum in signums:
      action = ctypes.create_string_buffer(_SIGACTION_BYTES)
      if self._libc.sigaction(signum, None, action) == 0:
        self._saved[signum] = action

  def restore_changed(self) -> None:
    """Re-installs every saved action that was replaced since."""
    for signum, saved in self._saved.items():
      current = ctypes.create_string_buffer(_SIGACTION_BYTES)
      self._libc.sigaction(signum, None, current)
      # The handler pointer comes first in `struct sigaction`.
      pointer = ctypes.sizeof(ctypes.c_void_p)
      if current.raw[:pointer] != saved.raw[:pointer]:
        self._libc.sigaction(signum, saved, None)


class StopSignals:
  """Context manager: handles stop signals while active, restores after."""

  def __init__(self, *, interrupt: bool = False):
    """Initializes the handlers.

    Args:
      interrupt: Also take SIGINT (Ctrl-C) as a request to save and stop
        (then raise `KeyboardInterrupt`), rather than Python's immediate
        `KeyboardInterrupt`.
    """
    self._interrupt = interrupt
    self._event = threading.Event()
    self._lock = threading.RLock()  # Handlers may nest in the main thread.
    self._training = threading.Event()
    self._closed = threading.Event()
    self._previous = {}
    self._previous_wakeup = -1
    self._pipe = None
    self._watcher = None
    self.signal_name = None
    self.interrupted = False  # Ctrl-C asked for a save and KeyboardInterrupt.

  def _handle(self, signum, frame):
    del frame
    self._record(signum)

  def _handle_interrupt(self, signum, frame):
    """Ctrl-C: a stop request once training runs; a second one insists."""
    del frame
    if not self._training.is_set() or self.interrupted:
      interrupt = KeyboardInterrupt()
      interrupt.immediate = True  # Not held for a save (`trainer.controller`).
      raise interrupt
    with self._lock:
      self.interrupted = True
      if not self._event.is_set():
        self.signal_name = signal.Signals(signum).name
        self._event.set()
    logging.warning("Interrupted: saving a checkpoint at the end of this"
                    " training loop (press Ctrl-C again to stop at once,"
                    " without saving).")

  def _record(self, signum: int) -> None:
    with self._lock:  # The main thread's handler and the watcher both come.
      if self._event.is_set():
        return
      self.signal_name = signal.Signals(signum).name
      self._event.set()
    if not self._training.is_set():
      print(f"error: stopped by {self.signal_name} during start-up, before"
            " the first training loop; the latest checkpoint is unchanged,"
            " relaunch to resume.", file=sys.stderr, flush=True)
      sys.stdout.flush()
      os._exit(EXIT_PREEMPTED)  # pylint: disable=protected-access

  def is_set(self) -> bool:
    return self._event.is_set()

  def training_started(self) -> None:
    """From now on a signal is a request polled at loop boundaries."""
    self._training.set()

  def _watch(self, c_handlers: _CHandlers) -> None:
    reader = self._pipe[0]
    while not self._closed.is_set():
      ready, _, _ = select.select([reader], [], [], _RECHECK_SECONDS)
      if ready:
        for signum in os.read(reader, 64):
          if signum in STOP_SIGNALS:
            self._record(signum)
      c_handlers.restore_changed()

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is not threading.main_thread():
      return self  # Signals reach only the main thread's handlers.
    for signum in STOP_SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    if self._interrupt:
      self._previous[signal.SIGINT] = signal.signal(signal.SIGINT,
                                                    self._handle_interrupt)
    self._pipe = os.pipe()
    os.set_blocking(self._pipe[0], False)
    os.set_blocking(self._pipe[1], False)
    self._previous_wakeup = signal.set_wakeup_fd(self._pipe[1],
                                                 warn_on_full_buffer=False)
    self._watcher = threading.Thread(
        target=self._watch, args=(_CHandlers(STOP_SIGNALS),), daemon=True,
        name="harness-stop-signals")
    self._watcher.start()
    return self

  def __exit__(self, *exc_info) -> None:
    if self._watcher is None:
      return
    self._closed.set()
    self._watcher.join(timeout=5)
    signal.set_wakeup_fd(self._previous_wakeup)
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    for fd in self._pipe:
      os.close(fd)
