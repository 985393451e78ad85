"""SIGTERM/SIGUSR1 as a request to stop cleanly at the next loop boundary.

Under MultiWorkerMirroredStrategy TensorFlow's C++ preemption notifier
catches SIGTERM and training simply continues, so the harness installs its
own handlers after the strategy exists. A handler only records the request;
the training loop polls it at each loop boundary, where all workers agree
(an all-reduce) to save a checkpoint at the same step and exit with
`EXIT_PREEMPTED`. Slurm sends SIGUSR1 ahead of a time limit
(`#SBATCH --signal=USR1@120`), Kubernetes and most schedulers SIGTERM.
"""

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
  """Context manager: records stop signals while active, restores after."""

  def __init__(self):
    self._event = threading.Event()
    self._previous = {}
    self.signal_name = None

  def _handle(self, signum, frame):
    del frame
    self.signal_name = signal.Signals(signum).name
    self._event.set()

  def is_set(self) -> bool:
    return self._event.is_set()

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is threading.main_thread():
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
