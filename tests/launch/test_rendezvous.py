"""The start-up rendezvous with threads standing in for worker processes."""

import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from launch.distributed import cluster as cluster_lib
from launch.distributed import rendezvous
from launch.errors import ConfigError
from launch.local.supervisor import free_ports


def clusters(num_workers):
  addresses = tuple(f"localhost:{port}" for port in free_ports(num_workers))
  return [cluster_lib.ClusterInfo({"worker": addresses}, "worker", index)
          for index in range(num_workers)]


def start_meeting(infos, timeout=10.0, start=None):
  """Starts `meet` for each task in a thread; returns (threads, outcomes).

  `outcomes[index]` becomes "go" or the exception once that task is done.
  """
  outcomes = {}

  def run(index, info):
    try:
      rendezvous.meet(info, timeout=timeout)
      outcomes[index] = "go"
    except Exception as error:  # pylint: disable=broad-except
      outcomes[index] = error

  threads = [threading.Thread(target=run, args=(index, info))
             for index, info in enumerate(infos) if start is None
             or index in start]
  for thread in threads:
    thread.start()
  return threads, outcomes


def meet_all(infos, timeout=10.0, start=None):
  """Runs `meet` for each task in a thread; returns {index: outcome}."""
  threads, outcomes = start_meeting(infos, timeout, start)
  for thread in threads:
    thread.join(timeout=30)
  return outcomes


@pytest.mark.parametrize("num_workers", [2, 3])
def test_all_workers_go_together(num_workers):
  assert meet_all(clusters(num_workers)) == {
      index: "go" for index in range(num_workers)}


def test_a_missing_worker_times_out_with_its_address():
  infos = clusters(3)
  started = time.monotonic()
  outcomes = meet_all(infos, timeout=1.0, start={0, 1})
  assert time.monotonic() - started < 5
  assert isinstance(outcomes[0], rendezvous.StartupTimeout)
  assert str(outcomes[0]) == (f"worker 2 ({infos[0].cluster['worker'][2]})"
                              " did not join within --startup_timeout=1 s.")
  assert isinstance(outcomes[1], rendezvous.StartupTimeout)


def test_a_worker_whose_port_is_taken_stops_everyone_at_once():
  infos = clusters(3)
  port = int(infos[0].cluster["worker"][2].rsplit(":", 1)[1])
  with socket.socket() as squatter:
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    started = time.monotonic()
    outcomes = meet_all(infos, timeout=30.0)
  assert time.monotonic() - started < 10
  for index in range(3):
    assert isinstance(outcomes[index], ConfigError), outcomes
    assert str(outcomes[index]).startswith(f"port {port} of worker:2 (")
    assert "another process uses it, give this task another port." in str(
        outcomes[index])


def test_a_taken_port_of_the_first_worker_is_one_sentence():
  infos = clusters(2)
  port = int(infos[0].cluster["worker"][0].rsplit(":", 1)[1])
  with socket.socket() as squatter:
    squatter.bind(("127.0.0.1", port))
    squatter.listen(1)
    with pytest.raises(ConfigError, match=f"^port {port} of worker:0"):
      rendezvous.meet(infos[0], timeout=2.0)


def test_strangers_are_not_counted():
  infos = clusters(2)
  (leader,), outcomes = start_meeting(infos, timeout=1.5, start={0})
  time.sleep(0.3)
  host, port = infos[0].cluster["worker"][0].rsplit(":", 1)
  with socket.create_connection((host, int(port))) as stranger:
    stranger.sendall(b'{"token": "another job", "worker": 1}\n')
    time.sleep(0.2)
  leader.join(timeout=10)
  # Still waiting for the real worker 1.
  assert isinstance(outcomes[0], rendezvous.StartupTimeout), outcomes


@pytest.mark.slow  # Waits out three silent greetings, ~12 s.
def test_a_taken_port_of_the_first_worker_stops_the_others_too():
  infos = clusters(2)
  port = int(infos[0].cluster["worker"][0].rsplit(":", 1)[1])
  with socket.socket() as squatter:  # Accepts, and never answers.
    squatter.bind(("127.0.0.1", port))
    squatter.listen(8)
    started = time.monotonic()
    outcomes = meet_all(infos, timeout=60.0)
  assert time.monotonic() - started < 30
  assert str(outcomes[0]).startswith(f"port {port} of worker:0")
  assert isinstance(outcomes[1], ConfigError), outcomes
  assert str(outcomes[1]) == (
      f"port {port} of worker 0 (localhost:{port}) is held by another"
      " program that does not answer as this job's first worker; give"
      " worker 0 another port.")


def test_a_connection_reset_mid_hello_does_not_stop_the_first_worker():
  infos = clusters(2)
  (leader,), outcomes = start_meeting(infos, start={0})
  time.sleep(0.3)
  host, port = infos[0].cluster["worker"][0].rsplit(":", 1)
  rude = socket.create_connection((host, int(port)))
  rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                  struct.pack("ii", 1, 0))
  rude.sendall(b'{"token": ')
  rude.close()  # RST instead of FIN.
  rendezvous.meet(infos[1], timeout=10.0)
  leader.join(timeout=20)
  assert outcomes == {0: "go"}


_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # HTTP/2, empty.


class _OldLeader:
  """Stands in for a worker 0 from before a restart: TensorFlow's server on
  the port, greeting every connection with an HTTP/2 SETTINGS frame."""

  def __init__(self, port: int):
    self._server = socket.socket()
    self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    self._server.bind(("", port))
    self._server.listen(8)
    self._server.settimeout(0.1)
    self._running = True
    self.connections = 0
    self._thread = threading.Thread(target=self._serve, daemon=True)
    self._thread.start()

  def _serve(self):
    while self._running:
      try:
        connection, _ = self._server.accept()
      except OSError:
        continue
      self.connections += 1
      with connection:
        connection.sendall(_SETTINGS_FRAME)
        time.sleep(0.2)

  def stop(self):
    self._running = False
    self._thread.join()
    self._server.close()


def test_a_real_tensorflow_server_is_told_from_other_programs():
  (port,) = free_ports(1)
  server = subprocess.Popen(  # Its own process: no server in pytest's.
      [sys.executable, "-c",
       "import sys, tensorflow as tf\n"
       f"tf.distribute.Server({{'worker': ['localhost:{port}']}},"
       " job_name='worker', task_index=0, protocol='grpc', start=True)\n"
       "print('ready', flush=True)\nsys.stdin.read()"],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
      text=True)
  try:
    assert server.stdout.readline() == "ready\n"
    with socket.create_connection(("localhost", port)) as connection:
      data = rendezvous._read_line(connection, time.monotonic() + 2)  # pylint: disable=protected-access
  finally:
    server.kill()
    server.wait()
  assert rendezvous._is_grpc_server(data), data  # pylint: disable=protected-access
  assert not rendezvous._is_grpc_server(b"SSH-2.0-OpenSSH_9.2\r\n")  # pylint: disable=protected-access
  assert not rendezvous._is_grpc_server(b"")  # pylint: disable=protected-access


def test_a_restarted_worker_waits_for_the_old_first_worker_to_end(caplog):
  # A Kubernetes Indexed Job recreates only the failed pod: the new worker
  # 1 meets worker 0's TensorFlow server of before, until that one fails
  # and its successor leads. Not a port held by another program (exit 2,
  # which the manifests' podFailurePolicy turns into a failed Job).
  infos = clusters(2)
  port = int(infos[0].cluster["worker"][0].rsplit(":", 1)[1])
  old = _OldLeader(port)
  try:
    (follower,), outcomes = start_meeting(infos, timeout=30.0, start={1})
    time.sleep(4)  # Three strangers would have ended it in ~1 s.
    assert 1 not in outcomes and old.connections >= 3
  finally:
    old.stop()
  (leader,), leader_outcome = start_meeting(infos, timeout=30.0, start={0})
  follower.join(timeout=20)
  leader.join(timeout=20)
  assert outcomes == {1: "go"} and leader_outcome == {0: "go"}
  warnings = [record.getMessage() for record in caplog.records
              if "answers as a TensorFlow server" in record.getMessage()]
  assert warnings == [
      f"Port {port} of worker 0 (localhost:{port}) answers as a TensorFlow"
      " server, not as this job's rendezvous: probably a worker 0 from"
      " before this task restarted, still running (or worker 0's address"
      " points at another job's server); waiting for it to end."]


def test_after_the_old_first_worker_a_timeout_blames_the_missing_worker():
  infos = clusters(3)
  port = int(infos[0].cluster["worker"][0].rsplit(":", 1)[1])
  old = _OldLeader(port)
  try:
    (follower,), outcomes = start_meeting(infos, timeout=8.0, start={1})
    time.sleep(2)
  finally:
    old.stop()
  (leader,), leader_outcome = start_meeting(infos, timeout=5.0, start={0})
  follower.join(timeout=20)
  leader.join(timeout=20)  # Worker 2 never comes.
  assert str(leader_outcome[0]).startswith("worker 2 (")
  assert str(outcomes[1]) == (
      f"the first worker ({infos[0].cluster['worker'][0]}) did not start the"
      " run within --startup_timeout=8 s.")


def test_a_tensorflow_server_outliving_the_grace_is_not_this_jobs():
  infos = clusters(2)
  port = int(infos[0].cluster["worker"][0].rsplit(":", 1)[1])
  old = _OldLeader(port)
  try:
    with pytest.raises(ConfigError) as raised:
      rendezvous.meet(infos[1], timeout=30.0, old_leader_grace=1.5)
  finally:
    old.stop()
  assert str(raised.value) == (
      f"port {port} of worker 0 (localhost:{port}) is held by a TensorFlow"
      " server that is not this job's first worker (it still answered after"
      " 1.5 s, longer than a worker 0 of this job outlives a lost peer); stop"
      " that server or give worker 0 another address.")


def test_an_old_first_worker_that_never_ends_is_a_timeout_naming_it():
  infos = clusters(2)
  port = int(infos[0].cluster["worker"][0].rsplit(":", 1)[1])
  old = _OldLeader(port)
  try:
    with pytest.raises(rendezvous.StartupTimeout) as raised:
      rendezvous.meet(infos[1], timeout=2.0)
  finally:
    old.stop()
  assert str(raised.value) == (
      f"the first worker's port (localhost:{port}) still answered as a"
      " TensorFlow server after --startup_timeout=2 s: an earlier run of this"
      " job (or another job) is still using it; stop it, or give worker 0"
      " another port.")
