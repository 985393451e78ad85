"""Preemption, crashes, exact resume, NaN guard, resume safety: real runs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import checkpoints
from tests.processes import (REPO_ROOT, harness_env, run_launch, run_workers,
                             worker_tf_configs)

pytestmark = pytest.mark.slow

RESUME_FLAGS = ["--global_batch_size=64", "--steps_per_loop=20",
                "--checkpoint_every=40", "--deterministic", "--optimizer=sgd",
                "--learning_rate=0.05", "--l2=1e-4"]
LONG_RUN = ["--train_steps=100000", "--checkpoint_every=200",
            "--steps_per_loop=50"]


def train_lines(model_dir):
  with open(model_dir / "metrics.jsonl", encoding="utf-8") as stream:
    return [json.loads(line)["step"] for line in stream
            if json.loads(line)["split"] == "train"]


def weights(model_dir, step):
  return checkpoints.restored_weights(model_dir / "checkpoints",
                                      expected_step=step, optimizer="sgd")


def assert_bitwise_equal(first, second):
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)


def start_workers(args, tf_configs, log_dir):
  processes = []
  for index, tf_config in enumerate(tf_configs):
    log = open(log_dir / f"worker-{index}.log", "w")
    processes.append((subprocess.Popen(
        [sys.executable, "-m", "launch", *args], env=harness_env(
            TF_CONFIG=tf_config), cwd=REPO_ROOT, stdout=log,
        stderr=subprocess.STDOUT), log))
  return processes


def wait_all(processes, timeout=120):
  try:
    return [process.wait(timeout=timeout) for process, _ in processes]
  finally:
    for process, log in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
      log.close()


def wait_for(path, timeout=120):
  deadline = time.monotonic() + timeout
  while not path.exists():
    assert time.monotonic() < deadline, f"{path} never appeared"
    time.sleep(0.1)


def test_stop_at_120_and_resume_to_200_is_bitwise_equal_on_two_cpus(
    tmp_path):
  flags = [*RESUME_FLAGS, "--cpu_devices=2"]
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  assert run_launch([*flags, "--train_steps=200",
                     f"--model_dir={straight}"]).returncode == 0
  assert run_launch([*flags, "--train_steps=120",
                     f"--model_dir={resumed}"]).returncode == 0
  result = run_launch([*flags, "--train_steps=200", f"--model_dir={resumed}"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert train_lines(resumed) == train_lines(straight)
  assert_bitwise_equal(weights(straight, 200), weights(resumed, 200))


def test_stop_and_resume_is_bitwise_equal_on_two_workers(tmp_path):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  for model_dir, steps in ((straight, 200), (resumed, 120), (resumed, 200)):
    results = run_workers([*RESUME_FLAGS, f"--train_steps={steps}",
                           f"--model_dir={model_dir}"], 2)
    assert [r.returncode for r in results] == [0, 0], results[0].stdout[-2000:]
  assert_bitwise_equal(weights(straight, 200), weights(resumed, 200))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1,
                                    signal.SIGINT])
def test_signal_saves_at_a_loop_boundary_and_relaunch_loses_nothing(
    tmp_path, signum):
  model_dir = tmp_path / "run"
  args = ["--cpu_devices=2", *LONG_RUN, f"--model_dir={model_dir}"]
  with open(tmp_path / "first.log", "w") as log:
    process = subprocess.Popen([sys.executable, "-m", "launch", *args],
                               env=harness_env(), cwd=REPO_ROOT, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
      wait_for(model_dir / "checkpoints" / "checkpoint")
      process.send_signal(signum)
      assert process.wait(timeout=60) == 42
    finally:
      process.kill()
  output = (tmp_path / "first.log").read_text()
  stopped = train_lines(model_dir)[-1]
  assert f"error: stopped at step {stopped} on request" in output
  assert stopped % 50 == 0  # At a loop boundary.
  weights_at_stop = checkpoints.restored_weights(model_dir / "checkpoints",
                                                 expected_step=stopped)
  assert weights_at_stop
  final = stopped + 100
  result = run_launch([*args, f"--train_steps={final}"])
  assert result.returncode == 0, result.stderr[-2000:]
  steps = train_lines(model_dir)
  assert steps == list(range(50, final + 1, 50))  # None lost or repeated.


def test_sigterm_to_one_worker_stops_both_at_the_same_step(tmp_path):
  model_dir = tmp_path / "run"
  args = [*LONG_RUN, f"--model_dir={model_dir}"]
  processes = start_workers(args, worker_tf_configs(2), tmp_path)
  wait_for(model_dir / "checkpoints" / "checkpoint")
  processes[1][0].send_signal(signal.SIGTERM)
  assert wait_all(processes, timeout=60) == [42, 42]
  stopped = train_lines(model_dir)[-1]
  checkpoints.restored_weights(model_dir / "checkpoints",
                               expected_step=stopped)
  results = run_workers([*args, f"--train_steps={stopped + 100}"], 2)
  assert [r.returncode for r in results] == [0, 0]
  assert train_lines(model_dir)[-3:] == [stopped, stopped + 50, stopped + 100]


def test_sigkill_of_a_worker_fails_the_survivor_and_restart_resumes(tmp_path):
  model_dir = tmp_path / "run"
  args = [*LONG_RUN, f"--model_dir={model_dir}"]
  processes = start_workers(args, worker_tf_configs(2), tmp_path)
  wait_for(model_dir / "checkpoints" / "checkpoint")
  killed_at = time.monotonic()
  processes[1][0].send_signal(signal.SIGKILL)
  codes = wait_all(processes, timeout=90)
  assert codes[0] == 1 and time.monotonic() - killed_at < 90
  survivor = (tmp_path / "worker-0.log").read_text()
  assert "error: the run stopped because a peer worker failed" in survivor
  assert "Traceback" not in survivor
  latest = checkpoints.restored_weights(model_dir / "checkpoints",
                                        expected_step=200)
  assert latest
  assert train_lines(model_dir)[-1] - 200 <= 200  # Lost <= checkpoint_every.
  results = run_workers([*args, "--train_steps=300"], 2)
  assert [r.returncode for r in results] == [0, 0]
  assert train_lines(model_dir)[-2:] == [250, 300]


@pytest.mark.parametrize("num_workers", [1, 2])
def test_non_finite_loss_stops_every_worker_without_a_checkpoint(
    tmp_path, num_workers):
  model_dir = tmp_path / "run"
  args = ["--optimizer=sgd", "--learning_rate=1e12", "--train_steps=400",
          "--steps_per_loop=10", "--checkpoint_every=10",
          f"--model_dir={model_dir}"]
  if num_workers == 1:
    results = [run_launch(args)]
    outputs = [results[0].stderr]
  else:
    results = run_workers(args, 2)
    outputs = [r.stdout for r in results]
  assert [r.returncode for r in results] == [1] * num_workers
  for output in outputs:
    assert "error: the training loss became" in output
    assert "Traceback" not in output
  saved = checkpoints.list_steps(model_dir / "checkpoints")
  nan_step = int(outputs[0].split("in the steps up to ")[1].split(";")[0])
  assert all(step < nan_step for step in saved)


def test_resuming_with_other_settings_is_refused(tmp_path):
  model_dir = tmp_path / "run"
  assert run_launch(["--train_steps=20", f"--model_dir={model_dir}"]
                    ).returncode == 0
  before = sorted(os.listdir(model_dir / "checkpoints"))
  result = run_launch(["--train_steps=40", "--global_batch_size=32",
                       "--model=cnn", f"--model_dir={model_dir}"])
  assert result.returncode == 2
  assert ("holds a run with other settings (--global_batch_size=64 -> 32;"
          " --model='mlp' -> 'cnn')") in result.stderr
  assert sorted(os.listdir(model_dir / "checkpoints")) == before
  allowed = run_launch(["--train_steps=40", "--seed=5", "--allow_config_change",
                        f"--model_dir={model_dir}"])
  assert allowed.returncode == 0, allowed.stderr[-2000:]
