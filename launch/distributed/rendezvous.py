"""Start-up rendezvous of the training tasks, before TensorFlow's.

Creating a MultiWorkerMirroredStrategy blocks inside TensorFlow, holding
Python's GIL, until every worker has joined: no Python thread, timeout or
signal handler runs meanwhile, and TensorFlow's own SIGTERM handler swallows
a scheduler's stop signal. So the tasks first meet here, in plain Python:
the first training task listens on its own port (the one TensorFlow takes
right after), the others connect and say hello, and once all are there the
first one answers "go" and everybody creates the strategy at the same
moment. Meanwhile a stop signal ends a task at once, `--startup_timeout`
bounds the wait with one sentence, and a task that cannot start (its port
is taken) makes all of them stop within a second instead of hanging.
"""

import hashlib
import json
import select
import socket
import time

from absl import logging

from launch.distributed import cluster as cluster_lib
from launch.errors import ConfigError

_POLL_SECONDS = 0.2
_ABORT_GRACE_SECONDS = 5.0
_HELLO_SECONDS = 2.0
_STRANGER_LIMIT = 3


class StartupTimeout(TimeoutError):
  """The workers did not all join in time."""


def _token(cluster: cluster_lib.ClusterInfo) -> str:
  """Names this job's cluster, so stray connections are not counted."""
  spec = {role: list(cluster.cluster[role])
          for role in cluster_lib.TRAINING_ROLES if role in cluster.cluster}
  return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _host_port(address: str) -> tuple[str, int]:
  host, _, port = address.rpartition(":")
  return host.strip("[]"), int(port)


def _training_addresses(cluster: cluster_lib.ClusterInfo) -> list[str]:
  """Addresses by worker id: the chief (if any) first, then the workers."""
  return [address for role in cluster_lib.TRAINING_ROLES
          for address in cluster.cluster.get(role, ())]


def check_port_free(cluster: cluster_lib.ClusterInfo) -> None:
  """Raises ConfigError if this task's port is taken on this machine.

  TensorFlow's server binds every interface with SO_REUSEADDR; this binds
  the same way, so it fails exactly when TensorFlow would.
  """
  address = _training_addresses(cluster)[cluster.worker_id]
  _, port = _host_port(address)
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      probe.bind(("", port))
      probe.listen(1)
    except OSError as error:
      raise ConfigError(_port_taken(cluster, address, error)) from None


def _port_taken(cluster, address: str, error: OSError) -> str:
  return (f"port {_host_port(address)[1]} of {cluster.task_type}:"
          f"{cluster.task_index} ({address}) cannot be opened"
          f" ({error.strerror}); another process uses it, give this task"
          " another port.")


def _send(connection: socket.socket, message: dict) -> bool:
  """Sends one JSON line; False if the peer is gone."""
  try:
    connection.sendall((json.dumps(message) + "\n").encode())
  except OSError:
    return False
  return True


def _read_line(connection: socket.socket, deadline: float) -> bytes:
  """What the peer sent up to its first newline, the deadline or its end."""
  data = b""
  while not data.endswith(b"\n") and len(data) <= 65536:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
      break
    try:
      ready, _, _ = select.select([connection], [], [],
                                  min(remaining, _POLL_SECONDS))
      if not ready:
        continue
      chunk = connection.recv(4096)
    except OSError:  # Reset by the peer, or closed.
      break
    if not chunk:
      break
    data += chunk
  return data


def _parse(data: bytes) -> dict | None:
  """The JSON line's message, or None if it is not one."""
  if not data.endswith(b"\n"):
    return None
  try:
    message = json.loads(data)
  except ValueError:
    return None
  return message if isinstance(message, dict) else None


def _receive(connection: socket.socket, deadline: float) -> dict | None:
  """One JSON line, or None if the peer closed or sent garbage."""
  return _parse(_read_line(connection, deadline))


def _is_grpc_server(data: bytes) -> bool:
  """Whether `data` opens like a gRPC server's answer: an HTTP/2 SETTINGS
  frame (RFC 9113, 3.4), which TensorFlow's server sends on accepting."""
  return len(data) >= 9 and data[3] == 0x04 and data[5:9] == b"\0\0\0\0"


def _lead(cluster: cluster_lib.ClusterInfo, timeout: float,
          token: str) -> None:
  addresses = _training_addresses(cluster)
  deadline = time.monotonic() + timeout if timeout else float("inf")
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      server.bind(("", _host_port(addresses[0])[1]))
    except OSError as error:
      raise ConfigError(_port_taken(cluster, addresses[0], error)) from None
    server.listen(len(addresses))
    joined = {}  # worker id -> connection
    try:
      while len(joined) < len(addresses) - 1:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
          missing = [f"worker {index} ({address})"
                     for index, address in enumerate(addresses)
                     if index and index not in joined]
          raise StartupTimeout(
              f"{', '.join(missing)} did not join within"
              f" --startup_timeout={timeout:g} s.")
        ready, _, _ = select.select([server], [], [],
                                    min(remaining, _POLL_SECONDS))
        if not ready:
          continue
        connection, _ = server.accept()
        # Greet first, so a worker that reached some other program on this
        # port can tell (see `_follow`).
        _send(connection, {"leader": token})
        hello = _receive(connection, time.monotonic() + _HELLO_SECONDS)
        if (not hello or hello.get("token") != token
            or not isinstance(hello.get("worker"), int)
            or not 0 < hello["worker"] < len(addresses)):
          connection.close()  # Not a worker of this job.
          continue
        if hello.get("error"):
          connection.close()
          _abort_all(server, {**joined, hello["worker"]: None},
                     hello["error"], len(addresses), token)
          raise ConfigError(hello["error"])
        if hello["worker"] in joined:  # A restarted worker: the newer wins.
          joined[hello["worker"]].close()
        joined[hello["worker"]] = connection
      for connection in joined.values():
        _send(connection, {"go": True})
      for connection in joined.values():  # They close first (TIME_WAIT).
        _receive(connection, time.monotonic() + 2)
    finally:
      for connection in joined.values():
        connection.close()


def _abort_all(server: socket.socket, joined: dict, message: str,
               num_workers: int, token: str) -> None:
  """Tells every worker, also those still to come (for a few seconds)."""
  for connection in joined.values():
    if connection is not None:
      _send(connection, {"abort": message})
  told = set(joined) | {0}
  deadline = time.monotonic() + _ABORT_GRACE_SECONDS
  while len(told) < num_workers and time.monotonic() < deadline:
    ready, _, _ = select.select([server], [], [], _POLL_SECONDS)
    if not ready:
      continue
    connection, _ = server.accept()
    with connection:
      _send(connection, {"leader": token})
      hello = _receive(connection, time.monotonic() + _HELLO_SECONDS)
      if hello and hello.get("token") == token:
        _send(connection, {"abort": message})
        told.add(hello.get("worker"))


def _follow(cluster: cluster_lib.ClusterInfo, timeout: float, token: str,
            error: str | None, old_leader_grace: float | None = None) -> None:
  leader = _training_addresses(cluster)[0]
  port = _host_port(leader)[1]
  deadline = time.monotonic() + timeout if timeout else float("inf")
  hello = {"token": token, "worker": cluster.worker_id, "error": error}
  strangers = 0  # Connections answered by something else than worker 0.
  old_leader_since = None  # When a TensorFlow server answered: see below.
  while time.monotonic() < deadline:
    try:
      with socket.create_connection(_host_port(leader),
                                    timeout=_POLL_SECONDS * 5) as connection:
        data = _read_line(connection, time.monotonic() + 2 * _HELLO_SECONDS)
        greeting = _parse(data)
        if not greeting or greeting.get("leader") != token:
          if _is_grpc_server(data):
            # Most likely this job's worker 0 of before a restart of this
            # task alone (a Kubernetes pod recreated while the others still
            # run): it fails once it misses this task (within its
            # --collective_timeout), and its successor leads. Wait for
            # that; a server that outlives the grace is not this job's.
            now = time.monotonic()
            if old_leader_since is None:
              old_leader_since = now
              logging.warning(
                  "Port %d of worker 0 (%s) answers as a TensorFlow server,"
                  " not as this job's rendezvous: probably a worker 0 from"
                  " before this task restarted, still running (or worker"
                  " 0's address points at another job's server); waiting"
                  " for it to end%s.", port, leader,
                  f" (up to {old_leader_grace:g} s)" if old_leader_grace
                  else "")
            elif old_leader_grace and now - old_leader_since > old_leader_grace:
              raise ConfigError(
                  f"port {port} of worker 0 ({leader}) is held by a"
                  " TensorFlow server that is not this job's first worker"
                  f" (it still answered after {old_leader_grace:g} s, longer"
                  " than a worker 0 of this job outlives a lost peer); stop"
                  " that server or give worker 0 another address.")
            time.sleep(_POLL_SECONDS * 5)
            continue
          strangers += 1
          if strangers >= _STRANGER_LIMIT:
            raise ConfigError(
                f"port {port} of worker 0 ({leader}) is"
                " held by another program that does not answer as this"
                " job's first worker; give worker 0 another port.")
          time.sleep(_POLL_SECONDS)
          continue
        strangers, old_leader_since = 0, None
        _send(connection, hello)
        if error:
          return
        answer = _receive(connection, deadline)
    except OSError:
      time.sleep(_POLL_SECONDS)  # Not listening yet, or restarted.
      continue
    if answer and answer.get("go"):
      return
    if answer and answer.get("abort"):
      raise ConfigError(answer["abort"])
  if old_leader_since is not None:
    raise StartupTimeout(
        f"the first worker's port ({leader}) still answered as a TensorFlow"
        f" server after --startup_timeout={timeout:g} s: an earlier run of"
        " this job (or another job) is still using it; stop it, or give"
        " worker 0 another port.")
  raise StartupTimeout(f"the first worker ({leader}) did not start the run"
                       f" within --startup_timeout={timeout:g} s.")


def meet(cluster: cluster_lib.ClusterInfo, *, timeout: float,
         old_leader_grace: float | None = None) -> None:
  """Returns once every training task of `cluster` has called `meet`.

  Args:
    cluster: A multi-worker cluster; this task is one of its training tasks.
    timeout: Seconds to wait for the others (0: forever).
    old_leader_grace: Seconds a TensorFlow server on worker 0's port (an
      earlier worker 0 of this job) may keep answering before it counts as
      another program's (ConfigError); None: until `timeout`.

  Raises:
    ConfigError: If this or another task cannot open its port.
    StartupTimeout: If the others did not all come in time.
  """
  token = _token(cluster)
  if cluster.worker_id == 0:
    _lead(cluster, timeout, token)
    return
  try:
    check_port_free(cluster)
  except ConfigError as error:
    try:  # Tell the others, so they stop now instead of at the timeout.
      _follow(cluster, min(timeout or 5.0, 5.0), token, str(error))
    except StartupTimeout:
      pass
    raise
  _follow(cluster, timeout, token, None, old_leader_grace)
