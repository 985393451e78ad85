"""Start-up of a multi-worker run: a taken port, a missing peer, a signal."""

import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.processes import REPO_ROOT, harness_env, worker_tf_configs

pytestmark = pytest.mark.slow


def start_worker(tf_config, model_dir, *args):
  return subprocess.Popen(
      [sys.executable, "-m", "launch", f"--model_dir={model_dir}",
       "--train_steps=20", *args],
      env=harness_env(TF_CONFIG=tf_config), cwd=REPO_ROOT,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process, timeout=60):
  try:
    output, _ = process.communicate(timeout=timeout)
  finally:
    process.kill()
  return process.returncode, output


def error_lines(output):
  assert "Traceback" not in output, output[-3000:]
  return [line for line in output.splitlines() if line.startswith("error:")]


def test_a_taken_port_is_one_sentence_and_the_peer_stops_too(tmp_path):
  configs = worker_tf_configs(2)
  port = json.loads(configs[1])["cluster"]["worker"][1].rsplit(":", 1)[1]
  with socket.socket() as squatter:
    squatter.bind(("127.0.0.1", int(port)))
    squatter.listen(1)
    processes = [start_worker(config, tmp_path / "run") for config in configs]
    started = time.monotonic()
    outcomes = [finish(process) for process in processes]
  assert time.monotonic() - started < 40
  for code, output in outcomes:
    assert code == 2, output[-3000:]
    assert error_lines(output) == [
        f"error: port {port} of worker:1 (localhost:{port}) cannot be opened"
        " (Address already in use); another process uses it, give this task"
        " another port."]
  assert not (tmp_path / "run").exists()


def test_a_missing_peer_ends_the_start_up_after_the_timeout(tmp_path):
  config = worker_tf_configs(2)[0]
  peer = json.loads(config)["cluster"]["worker"][1]
  code, output = finish(start_worker(config, tmp_path / "run",
                                     "--startup_timeout=3"))
  assert code == 1, output[-3000:]
  assert error_lines(output) == [
      f"error: worker 1 ({peer}) did not join within --startup_timeout=3 s."]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_while_waiting_for_peers_ends_at_once(tmp_path, signum):
  process = start_worker(worker_tf_configs(2)[0], tmp_path / "run")
  time.sleep(8)  # Imports done; waiting for worker 1, which never comes.
  assert process.poll() is None
  sent = time.monotonic()
  process.send_signal(signum)
  code, output = finish(process, timeout=30)
  assert time.monotonic() - sent < 5
  assert code == 42, output[-3000:]
  assert error_lines(output) == [
      f"error: stopped by {signal.Signals(signum).name} during start-up,"
      " before the first training loop; the latest checkpoint is unchanged,"
      " relaunch to resume."]


def test_ctrl_c_while_waiting_for_peers_ends_at_once(tmp_path):
  process = start_worker(worker_tf_configs(2)[0], tmp_path / "run")
  time.sleep(8)  # Imports done; waiting for worker 1, which never comes.
  assert process.poll() is None
  sent = time.monotonic()
  process.send_signal(signal.SIGINT)
  code, output = finish(process, timeout=30)
  assert time.monotonic() - sent < 5
  assert code == 130, output[-3000:]
  assert error_lines(output) == [
      "error: interrupted (Ctrl-C) without saving; the latest checkpoint is"
      " unchanged, relaunch to resume."]
