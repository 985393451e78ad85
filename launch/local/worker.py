"""One local worker process: its log file, its output pump and its heartbeat."""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

from launch.errors import EXIT_PREEMPTED
from launch.run import model_dir_lock

if TYPE_CHECKING:
  from launch.local.supervisor import GroupConfig

TAIL_LINES = 15  # Log lines kept to show when the worker fails.
# print() writes a line and its end separately: two workers' pumps could
# interleave them into "[worker:0] a[worker:1] b" and a blank line.
_OUTPUT_LOCK = threading.Lock()


def say(line: str) -> None:
  """Prints one whole line to stdout, never mixed with another thread's."""
  with _OUTPUT_LOCK:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def describe_status(returncode: int) -> str:
  if returncode == EXIT_PREEMPTED:
    return (f"stopped on a signal after saving a checkpoint (exit status"
            f" {returncode})")
  if returncode < 0:
    name = signal.Signals(-returncode).name
    return f"was killed by {name} (exit status {returncode})"
  return f"exited with status {returncode}"


class Worker:
  """One process, its log file, its output pump and its heartbeat."""

  def __init__(self, index: int, tf_config: str, config: "GroupConfig",
               wrap=lambda command: command, lock_fd: int | None = None):
    self.name = f"worker:{index}"
    self.log_path = os.path.join(config.log_dir, f"worker-{index}.log")
    self.heartbeat_path = os.path.join(config.log_dir,
                                       f"worker-{index}.heartbeat")
    self.tail = collections.deque(maxlen=TAIL_LINES)
    self.last_progress = time.monotonic()
    # A beat left by an earlier attempt is not progress of this one.
    self._last_beat = self._beat_time()
    self.has_beaten = False
    env = dict(os.environ, TF_CONFIG=tf_config, PYTHONUNBUFFERED="1")
    if "--verbose" not in config.training_args:  # It shows TF's C++ lines.
      env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if config.worker_envs:
      env.update(config.worker_envs[index])
    if lock_fd is not None and index == 0:  # The chief writes model_dir.
      env[model_dir_lock.INHERITED_FD_ENV] = str(lock_fd)
    args = [*config.command, *config.training_args]
    if config.heartbeat_env:
      env[config.heartbeat_env] = self.heartbeat_path
    else:
      args.append(f"--heartbeat_file={self.heartbeat_path}")
    self._log = open(self.log_path, "a", encoding="utf-8")
    self.address = json.loads(tf_config)["cluster"]["worker"][index]
    self.process = subprocess.Popen(
        wrap(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, errors="replace",
        pass_fds=(lock_fd,) if lock_fd is not None and index == 0 else ())
    self._pump = threading.Thread(target=self._copy_output, daemon=True)
    self._pump.start()

  def _copy_output(self):
    for line in self.process.stdout:
      line = line.rstrip("\n")
      self.tail.append(line)
      self._write_log(line)
      say(f"[{self.name}] {line}")

  def _write_log(self, line: str) -> None:
    """Appends to the log; a full or read-only disk only stops the copy.

    The output keeps being read (and shown) either way: a pump that died
    would fill the pipe and block the worker.
    """
    if self._log is None:
      return
    try:
      self._log.write(line + "\n")
      self._log.flush()
    except OSError as error:
      print(f"[supervisor] warning: cannot write {self.log_path}"
            f" ({error.strerror}); {self.name}'s output is no longer"
            " logged there.", file=sys.stderr, flush=True)
      self._close_log()

  def _close_log(self) -> None:
    log, self._log = self._log, None
    if log is not None:
      try:
        log.close()
      except OSError:
        pass  # The unwritten lines were reported by _write_log.

  def _beat_time(self) -> int | None:
    try:
      return os.stat(self.heartbeat_path).st_mtime_ns
    except FileNotFoundError:
      return None

  def made_progress(self) -> bool:
    """Whether the heartbeat file changed since the last look."""
    beat = self._beat_time()
    changed = beat is not None and beat != self._last_beat
    self._last_beat = beat
    self.has_beaten = self.has_beaten or changed
    return changed

  def signal(self, signum: int) -> None:
    if self.process.poll() is None:
      self.process.send_signal(signum)

  def close(self) -> None:
    self.process.wait()
    self._pump.join(timeout=5)
    self._close_log()
