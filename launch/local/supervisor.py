"""Starting, watching and stopping a group of local worker processes."""

import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import threading
import time

from launch.local import netns
from launch.local import worker as worker_lib
from launch.run import model_dir_lock
from launch.errors import (EXIT_BAD_INPUT, EXIT_PREEMPTED, EXIT_RUN_FAILED,
                           EXIT_STORAGE, ConfigError)

_POLL_SECONDS = 0.2
# After a forwarded stop signal, the other workers' time once the chief
# (the only writer of model_dir) has exited.
_AFTER_CHIEF_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class GroupConfig:
  """How to run one group of workers.

  Attributes:
    num_workers: Processes to start; worker 0 is the chief.
    training_args: Arguments after the command: flags of `python -m
      launch`, or a script's own arguments.
    log_dir: Where `worker-N.log` and heartbeat files go.
    hang_timeout: Seconds without a new step before a worker counts as
      failed (0: never).
    stop_grace: Seconds between SIGTERM and SIGKILL when stopping the
      group after a failure.
    signal_grace: Seconds the workers get to save and exit after a
      SIGINT/SIGTERM forwarded from the supervisor.
    command: The worker program; the training args follow it.
    isolate_network: Run the workers in a private network namespace with
      loopback only (TensorFlow's servers listen on every interface).
    worker_envs: Variables added to each worker's environment, by index
      (its GPUs, its CPU threads); empty: none.
    heartbeat_env: None: the command takes `--heartbeat_file=PATH` (as
      `python -m launch` does). Else the environment variable that carries
      PATH to a program that may write no heartbeat at all (a user's
      script), so a worker's hang clock starts at its first heartbeat.
    model_dir: The run's model_dir, if known: the supervisor holds its
      lock (one run per model_dir) and hands it to the chief.
  """

  num_workers: int
  training_args: list[str]
  log_dir: str
  hang_timeout: float = 600.0
  stop_grace: float = 3.0
  signal_grace: float = 60.0
  command: tuple[str, ...] = (sys.executable, "-m", "launch")
  isolate_network: bool = True
  worker_envs: tuple[dict[str, str], ...] = ()
  heartbeat_env: str | None = None
  model_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class Failure:
  """Why a group stopped early."""

  worker: str
  reason: str
  exit_code: int
  log_path: str
  tail: list[str]

  def describe(self) -> str:
    lines = "\n".join(f"  {line}" for line in self.tail) or "  (no output)"
    # A storage fault may have taken the log with it (model_dir removed).
    source = (self.log_path if os.path.exists(self.log_path) else
              f"its output (its log {self.log_path} is gone)")
    return (f"{self.worker} {self.reason}; the other workers were stopped."
            f" Last lines of {source}:\n{lines}")


def free_ports(count: int) -> list[int]:
  """Distinct ports the OS just handed out on 127.0.0.1."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for sock in sockets:
      sock.bind(("127.0.0.1", 0))
    return [sock.getsockname()[1] for sock in sockets]
  finally:
    for sock in sockets:
      sock.close()


def worker_tf_configs(num_workers: int) -> list[str]:
  cluster = {"worker": [f"localhost:{port}"
                        for port in free_ports(num_workers)]}
  return [json.dumps({"cluster": cluster,
                      "task": {"type": "worker", "index": index}})
          for index in range(num_workers)]


class WorkerGroup:
  """A started group; `wait()` returns None on success or the Failure."""

  def __init__(self, config: GroupConfig, clock=time.monotonic,
               wrap=lambda command: command, lock_fd: int | None = None):
    os.makedirs(config.log_dir, exist_ok=True)
    self._config = config
    self._clock = clock
    self.workers = [worker_lib.Worker(index, tf_config, config, wrap, lock_fd)
                    for index, tf_config
                    in enumerate(worker_tf_configs(config.num_workers))]
    for worker in self.workers:
      worker_lib.say(f"[supervisor] started {worker.name} (pid"
                     f" {worker.process.pid}, {worker.address}); log"
                     f" {worker.log_path}")

  def _check(self) -> Failure | None | bool:
    """A Failure, True when all exited 0, or None while running."""
    now = self._clock()
    hung, failed = [], []
    for worker in self.workers:
      returncode = worker.process.poll()
      if returncode not in (None, 0):
        failed.append((returncode, worker))
      if returncode is None:
        if worker.made_progress():
          worker.last_progress = now
        idle = now - worker.last_progress
        is_watched = worker.has_beaten or not self._config.heartbeat_env
        if (self._config.hang_timeout and is_watched
            and idle > self._config.hang_timeout):
          hung.append((idle, worker))
    if failed:
      # When a worker is killed its peers fail right after it with status 1
      # ("a peer worker failed"); name the killed one when both are seen.
      # The same for a worker's own fault (storage) against a peer's 1.
      failed.sort(key=lambda pair: (pair[0] >= 0,
                                    pair[0] == EXIT_RUN_FAILED))
      returncode, worker = failed[0]
      worker.close()
      return Failure(worker.name, worker_lib.describe_status(returncode), returncode,
                     worker.log_path, list(worker.tail))
    if hung:
      # Peers blocked in a collective on a stuck worker go idle at the same
      # moment as it does, so name every idle worker, longest idle first.
      hung.sort(key=lambda pair: -pair[0])
      idle, first = hung[0]
      names = ", ".join(worker.name for _, worker in hung)
      return Failure(names, f"made no progress for {idle:.0f} s"
                     f" (--hang_timeout={self._config.hang_timeout:g})",
                     EXIT_RUN_FAILED, first.log_path, list(first.tail))
    return all(worker.process.poll() == 0 for worker in self.workers) or None

  def wait(self, stop_requested: threading.Event) -> Failure | int | None:
    """Waits for the group; returns None, a Failure, or a signal number."""
    while True:
      if stop_requested.is_set():
        return stop_requested.signum
      outcome = self._check()
      if outcome is True:
        for worker in self.workers:
          worker.close()
        return None
      if outcome is not None:
        return outcome
      time.sleep(_POLL_SECONDS)

  def stop(self, signum: int = signal.SIGTERM, grace: float | None = None,
           give_up=lambda: False) -> list[int]:
    """Sends `signum`, then SIGKILL to what still runs after the grace.

    Args:
      signum: The first signal.
      grace: Seconds before SIGKILL; default: the config's `stop_grace`.
      give_up: Polled while waiting: True sends SIGKILL at once.

    Returns:
      The workers' exit codes.
    """
    for worker in self.workers:
      worker.signal(signum)
    grace = self._config.stop_grace if grace is None else grace
    deadline = time.monotonic() + grace
    while (time.monotonic() < deadline and not give_up()
           and any(w.process.poll() is None for w in self.workers)):
      time.sleep(0.05)
    for worker in self.workers:
      worker.signal(signal.SIGKILL)
    for worker in self.workers:
      worker.close()
    return [worker.process.returncode for worker in self.workers]


class _StopRequest(threading.Event):
  """SIGINT/SIGTERM to the supervisor; a second one insists."""

  signum = signal.SIGTERM
  count = 0

  def handler(self, signum, frame):
    del frame
    self.count += 1
    if not self.is_set():
      self.signum = signum
    self.set()


def _chief_gone_for(group: WorkerGroup, seconds: float):
  """A `give_up` for `stop`: the chief exited `seconds` ago or more.

  Only the chief writes model_dir; once it has exited after a forwarded
  signal, the others hold nothing worth waiting for.
  """
  exited_at = []

  def give_up() -> bool:
    if not exited_at and group.workers[0].process.poll() is not None:
      exited_at.append(time.monotonic())
    return bool(exited_at) and time.monotonic() - exited_at[0] >= seconds

  return give_up


def run_with_restarts(config: GroupConfig, *, max_restarts: int) -> int:
  """Runs the group, restarting it after failures; returns the exit code."""
  stop_request = _StopRequest()
  previous = {signum: signal.signal(signum, stop_request.handler)
              for signum in (signal.SIGINT, signal.SIGTERM)}
  try:
    with (model_dir_lock.ModelDirLock(config.model_dir) if config.model_dir
          else contextlib.nullcontext()) as lock, _network(config) as wrap:
      return _run_attempts(config, max_restarts, stop_request, wrap,
                           lock.fd if lock else None)
  except ConfigError as error:  # Another run took model_dir meanwhile.
    print(f"error: {error}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


@contextlib.contextmanager
def _network(config: GroupConfig):
  """Yields `wrap(command)`: the workers' private network, or a warning."""
  if not config.isolate_network:
    print("[supervisor] warning: --noisolate_network: the workers' TensorFlow"
          " servers listen on every interface of this machine, without"
          " authentication.", file=sys.stderr, flush=True)
    yield lambda command: command
    return
  with netns.LoopbackNamespace() as namespace:
    if namespace.is_isolated:
      print("[supervisor] the workers run in a private network namespace:"
            " their ports are reachable from nowhere else.", flush=True)
    else:
      print(f"[supervisor] warning: cannot isolate the workers in a network"
            f" namespace ({namespace.problem}; it needs CAP_SYS_ADMIN): their"
            f" TensorFlow servers listen on every interface of this machine,"
            f" without authentication. Run on a trusted network or as root.",
            file=sys.stderr, flush=True)
    yield namespace.wrap


def _run_attempts(config: GroupConfig, max_restarts: int,
                  stop_request: _StopRequest, wrap, lock_fd) -> int:
  for attempt in range(max_restarts + 1):
    group = WorkerGroup(config, wrap=wrap, lock_fd=lock_fd)
    outcome = group.wait(stop_request)
    if outcome is None:
      worker_lib.say(f"[supervisor] all {config.num_workers} workers"
                     " finished.")
      return 0
    if isinstance(outcome, int):
      return _stop_on_signal(group, config, outcome, stop_request)
    group.stop()
    print(f"error: {outcome.describe()}", file=sys.stderr, flush=True)
    if outcome.exit_code in (EXIT_BAD_INPUT, EXIT_STORAGE):
      # Restarting cannot fix the input, nor a full or read-only disk.
      return outcome.exit_code
    if attempt < max_restarts:
      print(f"[supervisor] restarting the group ({attempt + 1} of"
            f" {max_restarts}); it resumes from the latest checkpoint.",
            file=sys.stderr, flush=True)
  return EXIT_RUN_FAILED


def _stop_on_signal(group: WorkerGroup, config: GroupConfig, signum: int,
                    stop_request: _StopRequest) -> int:
  """Forwards a stop to the workers; always EXIT_PREEMPTED (42).

  The latest checkpoint is intact whatever the workers did (saved one more,
  or were killed after `signal_grace`, or by a second signal), so the one
  code means "stopped on request: relaunch the same command to resume".
  """
  print(f"[supervisor] {signal.Signals(signum).name} received; forwarding it"
        " to the workers (a second one kills them at once).",
        file=sys.stderr, flush=True)
  # SIGTERM lets the workers agree on a step, save and exit 42.
  chief_gone = _chief_gone_for(group, _AFTER_CHIEF_SECONDS)
  codes = group.stop(signal.SIGTERM, grace=config.signal_grace,
                     give_up=lambda: stop_request.count > 1 or chief_gone())
  chief = group.workers[0]
  if codes[0] == EXIT_PREEMPTED and any("was saved" in line
                                        for line in chief.tail):
    print("[supervisor] the workers saved a checkpoint; relaunch the same"
          " command to resume.", file=sys.stderr, flush=True)
  elif codes[0] == EXIT_PREEMPTED:  # Stopped during start-up: nothing new.
    print("[supervisor] the workers stopped before training; relaunch the"
          " same command to resume.", file=sys.stderr, flush=True)
  else:
    print(f"[supervisor] {chief.name} {worker_lib.describe_status(codes[0])} before"
          f" saving; the latest checkpoint"
          " is unchanged, relaunch the same command to resume.",
          file=sys.stderr, flush=True)
  return EXIT_PREEMPTED
