"""`python -m launch.local`: the local supervisor with real processes."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import checkpoints
from tests.integration.conftest import FLAGS, STEPS
from tests.processes import REPO_ROOT, Supervisor, harness_env

pytestmark = pytest.mark.slow

LONG_RUN = ["--train_steps=3000", "--checkpoint_every=500",
            "--steps_per_loop=100"]


@pytest.fixture
def supervise(tmp_path):
  started = []

  def start(args):
    supervisor = Supervisor(args, tmp_path / "supervisor.out")
    started.append(supervisor)
    return supervisor

  yield start
  for supervisor in started:
    supervisor.kill()


def wait_for(path, supervisor, timeout=120):
  """Waits for `path`; fails at once, with its output, if the group ended."""
  deadline = time.monotonic() + timeout
  while not path.exists():
    assert supervisor.process.poll() is None, supervisor.output[-3000:]
    assert time.monotonic() < deadline, (
        f"{path} never appeared:\n{supervisor.output[-3000:]}")
    time.sleep(0.1)


def is_alive(pid) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  try:  # A zombie whose parent is gone counts as dead.
    with open(f"/proc/{pid}/stat") as stat:
      return stat.read().split()[2] != "Z"
  except FileNotFoundError:
    return False


def test_two_local_workers_match_one_process(tmp_path, supervise,
                                             one_process_reference):
  model_dir = tmp_path / "run"
  supervisor = supervise(["--workers=2", *FLAGS, f"--model_dir={model_dir}"])
  assert supervisor.wait() == 0, supervisor.output[-3000:]
  output = supervisor.output
  assert "[worker:0] Final eval at step 100" in output
  assert "[worker:1]" in output and "all 2 workers finished" in output
  assert sorted(os.listdir(model_dir / "logs")) == [
      "worker-0.heartbeat", "worker-0.log", "worker-1.heartbeat",
      "worker-1.log"]
  assert "Final eval" in (model_dir / "logs" / "worker-0.log").read_text()
  weights = checkpoints.restored_weights(model_dir / "checkpoints",
                                         expected_step=STEPS)
  for value, expected in zip(weights, one_process_reference):
    np.testing.assert_allclose(value, expected, atol=1e-5)


def test_killed_worker_fails_the_group_fast_and_names_it(tmp_path, supervise):
  model_dir = tmp_path / "run"
  supervisor = supervise(["--workers=2", *LONG_RUN, "--train_steps=100000",
                          f"--model_dir={model_dir}"])
  wait_for(model_dir / "checkpoints" / "checkpoint", supervisor)
  victim, survivor = supervisor.worker_pid(1), supervisor.worker_pid(0)
  killed_at = time.monotonic()
  os.kill(victim, signal.SIGKILL)
  returncode = supervisor.wait(timeout=60)
  assert returncode == 1
  assert time.monotonic() - killed_at < 60
  assert ("error: worker:1 was killed by SIGKILL (exit status -9); the other"
          " workers were stopped") in supervisor.output
  assert "Last lines of" in supervisor.output
  assert not is_alive(survivor)


def test_restart_after_a_kill_completes_the_run(tmp_path, supervise):
  model_dir = tmp_path / "run"
  supervisor = supervise(["--workers=2", "--max_restarts=1", *LONG_RUN,
                          f"--model_dir={model_dir}"])
  wait_for(model_dir / "checkpoints" / "checkpoint", supervisor)
  os.kill(supervisor.worker_pid(1), signal.SIGKILL)
  assert supervisor.wait() == 0, supervisor.output[-3000:]
  assert "restarting the group (1 of 1)" in supervisor.output
  assert "Final eval at step 3000" in supervisor.output
  checkpoints.restored_weights(model_dir / "checkpoints", expected_step=3000)


def test_a_frozen_worker_counts_as_hung(tmp_path, supervise):
  model_dir = tmp_path / "run"
  supervisor = supervise(["--workers=2", "--hang_timeout=8", *LONG_RUN,
                          "--train_steps=100000", f"--model_dir={model_dir}"])
  wait_for(model_dir / "checkpoints" / "checkpoint", supervisor)
  frozen = supervisor.worker_pid(1)
  os.kill(frozen, signal.SIGSTOP)
  assert supervisor.wait(timeout=60) == 1
  # Whichever notices first: the supervisor's hang check (the worker
  # blocked on the frozen one is idle since the same moment, so either or
  # both may be named), or TensorFlow's heartbeat failing the other one.
  assert re.search(r"error: worker:[01](, worker:[01])? made no"
                   r" progress for \d+ s|error: worker:0 exited with status 1",
                   supervisor.output), supervisor.output
  assert not is_alive(frozen)


def test_sigterm_to_the_supervisor_stops_every_worker(tmp_path, supervise):
  model_dir = tmp_path / "run"
  supervisor = supervise(["--workers=2", *LONG_RUN, "--train_steps=100000",
                          f"--model_dir={model_dir}"])
  wait_for(model_dir / "checkpoints" / "checkpoint", supervisor)
  pids = [supervisor.worker_pid(index) for index in range(2)]
  supervisor.process.send_signal(signal.SIGTERM)
  assert supervisor.wait(timeout=60) == 42
  assert "SIGTERM received; forwarding it to the workers" in supervisor.output
  assert "the workers saved a checkpoint" in supervisor.output
  assert not any(is_alive(pid) for pid in pids)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_group_ends_within_seconds_of_the_save(tmp_path, supervise,
                                                         signum):
  # Before the fix, one worker of two lingered ~20 s after the save in
  # TensorFlow's teardown in 5 of 12 stops (issue 20).
  model_dir = tmp_path / "run"
  supervisor = supervise(["--workers=2", *LONG_RUN, "--train_steps=100000",
                          f"--model_dir={model_dir}"])
  wait_for(model_dir / "checkpoints" / "checkpoint", supervisor)
  pids = [supervisor.worker_pid(index) for index in range(2)]
  supervisor.process.send_signal(signum)
  deadline = time.monotonic() + 60
  while supervisor.output.count("was saved, relaunch to resume") < 2:
    assert time.monotonic() < deadline, supervisor.output[-3000:]
    time.sleep(0.05)
  saved_at = time.monotonic()
  while any(is_alive(pid) for pid in pids):
    assert time.monotonic() - saved_at < 5, supervisor.output[-3000:]
    time.sleep(0.05)
  assert supervisor.wait(timeout=5) == 42
  assert "the workers saved a checkpoint" in supervisor.output
  step = re.findall(r"stopped at step (\d+) on request", supervisor.output)
  assert len(set(step)) == 1, supervisor.output[-3000:]
  checkpoints.restored_weights(model_dir / "checkpoints",
                               expected_step=int(step[0]))


@pytest.mark.parametrize("args,env,message", [
    (["--workers=0"], {}, "--workers=0 must be positive"),
    (["--max_restarts=-1"], {}, "--max_restarts=-1 must be zero or more"),
    (["--model=resnet"], {}, "--model=resnet is not one of"),
    (["--oops=1"], {}, "Unknown command line flag 'oops'"),
    ([], {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}}'},
     "TF_CONFIG is set"),
])
def test_bad_supervisor_input_exits_2_before_starting(tmp_path, args, env,
                                                      message):
  model_dir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "launch.local", *args, f"--model_dir={model_dir}"],
      env=harness_env(**env), cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=60, check=False)
  assert result.returncode == 2, result.stderr
  assert message in result.stderr and "Traceback" not in result.stderr
  assert "started worker" not in result.stdout
  assert not model_dir.exists()


def test_worker_bad_input_is_reported_as_exit_2(tmp_path, supervise):
  # Valid flags, but 30 does not divide over 2 workers' replicas: only the
  # workers can tell. No restart can fix that, so none is tried.
  supervisor = supervise(["--workers=2", "--max_restarts=3",
                          "--global_batch_size=31",
                          f"--model_dir={tmp_path / 'run'}"])
  assert supervisor.wait() == 2
  assert "does not divide over the 2 replicas" in supervisor.output
  assert "restarting" not in supervisor.output


def listening_ports(net_tcp_dir) -> set[int]:
  """Ports in LISTEN state in the network namespace of a /proc/X/net."""
  ports = set()
  for name in ("tcp", "tcp6"):
    with open(f"{net_tcp_dir}/{name}") as table:
      for row in table.read().splitlines()[1:]:
        fields = row.split()
        if fields[3] == "0A":  # TCP_LISTEN
          ports.add(int(fields[1].rsplit(":", 1)[1], 16))
  return ports


def test_workers_listen_on_their_private_loopback_only(tmp_path, supervise):
  model_dir = tmp_path / "run"
  supervisor = supervise(["--workers=2", *LONG_RUN, "--train_steps=100000",
                          f"--model_dir={model_dir}"])
  wait_for(model_dir / "logs" / "worker-1.heartbeat", supervisor)
  assert "the workers run in a private network namespace" in (
      supervisor.output)
  for index in range(2):
    port = int(re.search(rf"started worker:{index} \(pid \d+,"
                         rf" localhost:(\d+)\)", supervisor.output).group(1))
    pid = supervisor.worker_pid(index)
    assert port in listening_ports(f"/proc/{pid}/net")  # Its own view.
    assert port not in listening_ports("/proc/self/net")  # This machine's.
    with pytest.raises(ConnectionRefusedError):
      socket.create_connection(("127.0.0.1", port), timeout=5).close()
