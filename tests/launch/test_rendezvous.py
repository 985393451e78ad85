"""The start-up rendezvous with threads standing in for worker processes."""

import socket
import struct
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
