"""Two runs on one model_dir: the second is refused, nothing of it written."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import pytest

from datasets import from_arrays
from launch import fit
from launch.errors import ConfigError
from launch.run.model_dir_lock import ModelDirLock
from tests.processes import REPO_ROOT, harness_env, run_launch

_RUN = ["--steps_per_loop=50", "--checkpoint_every=100", "--eval_every=100",
        "--global_batch_size=64", "--cpu_devices=1"]


def _digits():
  import numpy as np
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  features = (digits.images / 16.0).astype(np.float32).reshape(-1, 64)
  return from_arrays(features, digits.target)


def _files(model_dir) -> dict[str, int]:
  """Every file under model_dir but the lock and logs: path -> mtime_ns."""
  found = {}
  for root, _, names in os.walk(model_dir):
    for name in names:
      path = os.path.join(root, name)
      if name != ".lock":
        found[os.path.relpath(path, model_dir)] = os.stat(path).st_mtime_ns
  return found


def _metric_rows(model_dir) -> list[tuple[str, int]]:
  with open(os.path.join(model_dir, "metrics.jsonl"), encoding="utf-8") as rows:
    return [(row["split"], row["step"]) for row in map(json.loads, rows)]


def _latest_step(model_dir) -> int:
  text = (model_dir / "checkpoints" / "checkpoint").read_text()
  return int(re.search(r'model_checkpoint_path: "ckpt-(\d+)"', text)[1])


@pytest.mark.slow
def test_a_second_run_is_refused_and_a_killed_holder_never_blocks(tmp_path):
  model_dir = tmp_path / "run"
  args = [*_RUN, "--train_steps=100000", f"--model_dir={model_dir}"]
  first = subprocess.Popen([sys.executable, "-m", "launch", *args],
                           env=harness_env(), cwd=REPO_ROOT,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while not (model_dir / "checkpoints" / "checkpoint").exists():
      assert first.poll() is None and time.monotonic() < deadline
      time.sleep(0.1)
    config = (model_dir / "config.json").read_bytes()
    before = _files(model_dir)
    second = run_launch(args, timeout=120)  # The same command again.
    assert second.returncode == 2, second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines()
              if line.startswith("error:")]
    assert errors == [
        f"error: --model_dir={model_dir} is in use by another training run"
        f" (pid {first.pid} on host {socket.gethostname()}, started "
        + errors[0].split(", started ")[1]], second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    after = _files(model_dir)
    assert (model_dir / "config.json").read_bytes() == config
    assert after["config.json"] == before["config.json"]
    # No file of the second run: every file now was there, or is the first
    # run's next checkpoint.
    assert all(name in before or "ckpt-" in name or name == "checkpoints/"
               "checkpoint" for name in after), sorted(set(after) - set(before))
    rows = _metric_rows(model_dir)
    assert len(rows) == len(set(rows)), "a step was logged twice"
    first.send_signal(signal.SIGKILL)
    first.wait()
    # The kernel dropped the dead holder's lock: the same model_dir resumes.
    step = _latest_step(model_dir)
    resumed = run_launch([*_RUN, f"--train_steps={step + 50}",
                          f"--model_dir={model_dir}"], timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Resuming from step {step}" in resumed.stderr
    assert not (model_dir / ".lock").exists()
  finally:
    first.kill()
    first.wait()


_HOLD = """
import sys, time
from launch.run.model_dir_lock import ModelDirLock
with ModelDirLock(sys.argv[1]):
  print("held", flush=True)
  time.sleep(120)
"""


@pytest.mark.slow
def test_launch_local_refuses_a_held_model_dir_before_writing_logs(tmp_path):
  model_dir = tmp_path / "run"
  holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(model_dir)],
                            env=harness_env(), cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    result = subprocess.run(
        [sys.executable, "-m", "launch.local", "--workers=2",
         f"--model_dir={model_dir}"], env=harness_env(), cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.fullmatch(
        rf"error: --model_dir={model_dir} is in use by another training run"
        rf" \(pid {holder.pid} on host .*\); wait for it to end or stop it, or"
        r" use another --model_dir\.\n", result.stderr), result.stderr
    assert "started worker" not in result.stdout
    assert os.listdir(model_dir) == [".lock"]  # No logs/ of this group.
  finally:
    holder.kill()
    holder.wait()


class _Failing(keras.callbacks.Callback):

  def on_train_begin(self, logs=None):
    raise RuntimeError("a callback failed")


def test_fit_refused_while_held_then_twice_in_one_process(tmp_path):
  model_dir = tmp_path / "run"
  options = dict(model="mlp", model_dir=str(model_dir), global_batch_size=32,
                 train_steps=20, steps_per_loop=10, cpu_devices=2,
                 progress="none")
  with ModelDirLock(str(model_dir)):  # As if another run held it.
    with pytest.raises(ConfigError, match=(
        rf"^model_dir={re.escape(str(model_dir))} is in use by another"
        rf" training run \(pid {os.getpid()} on host .*use another"
        r" model_dir\.$")):
      fit(None, _digits(), **options)
    assert os.listdir(model_dir) == [".lock"]  # Nothing written.
  assert fit(None, _digits(), **options).step == 20
  # Released when fit returned: the same process trains on, then again
  # after a fit that raised.
  assert fit(None, _digits(), **dict(options, train_steps=30)).step == 30
  with pytest.raises(RuntimeError, match="a callback failed"):
    fit(None, _digits(), callbacks=[_Failing()],
        **dict(options, train_steps=35))
  assert fit(None, _digits(), **dict(options, train_steps=40)).step == 40
  assert not (model_dir / ".lock").exists()
