"""Resuming a checkpoint on another topology at the same global batch.

A run stopped at step 100 on one topology resumes on another (4 logical
CPUs -> 2; 2 workers -> 1 process of 1 or of 2 replicas) and is compared at
step 200 with a straight run on the new topology. With in-memory data the
examples of a step are a pure function of (seed, step, global batch), so
both train on the same batches; only the order in which the replicas'
gradients are summed differs during the first 100 steps. The weights agree
to float32 rounding (measured under --deterministic, TF 2.21, 2-core CPU:
max |dw| 2.8e-7 for 4 -> 2 CPUs, 2.9e-7 for 2 workers -> 1 replica), and
bit for bit when the replica count stays the same (2 workers -> 2 CPUs).

One-process runs go through `python -m launch`'s own code in this process
(`tests.processes.launch_in_this_process`); the 2 workers are real processes.
"""

import json

import numpy as np
import pytest
from tensorflow.python.framework import config as tf_config

from tests import checkpoints
from tests.conftest import use_fresh_collective_keys
from tests.processes import launch_in_this_process, run_workers

pytestmark = pytest.mark.slow

COMMON = ["--deterministic", "--global_batch_size=64", "--steps_per_loop=50"]
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _keep_op_determinism_local():
  """Op determinism turned on by a run here ends with the test.

  Op determinism is process-wide and has no public switch back off; this
  private one (`tensorflow.python.framework.config`, TF 2.21) undoes it so
  later tests in the session run as they would alone.
  """
  was_enabled = tf_config.is_op_determinism_enabled()
  yield
  if not was_enabled:
    tf_config.disable_op_determinism()


def train_here(args: list[str]) -> None:
  """`python -m launch COMMON ARGS` in this process; it must succeed."""
  use_fresh_collective_keys()  # Each run's strategy has its own size.
  code, errors = launch_in_this_process([*COMMON, *args])
  assert code == 0, errors


def logged_train_steps(model_dir) -> list[int]:
  with open(model_dir / "metrics.jsonl", encoding="utf-8") as stream:
    rows = [json.loads(line) for line in stream]
  return [row["step"] for row in rows if row["split"] == "train"]


def max_difference(first_dir, second_dir, step: int) -> float:
  """Largest |difference| between the two runs' weights at `step`."""
  return max(
      float(np.max(np.abs(first - second))) for first, second in zip(
          checkpoints.restored_weights(first_dir / "checkpoints",
                                       expected_step=step),
          checkpoints.restored_weights(second_dir / "checkpoints",
                                       expected_step=step), strict=True))


def test_four_logical_cpus_resume_on_two(tmp_path):
  resumed, straight = tmp_path / "resumed", tmp_path / "straight"
  train_here(["--cpu_devices=4", "--train_steps=100",
              f"--model_dir={resumed}"])
  train_here(["--cpu_devices=2", "--train_steps=200",
              f"--model_dir={resumed}"])
  train_here(["--cpu_devices=2", "--train_steps=200",
              f"--model_dir={straight}"])
  assert logged_train_steps(resumed) == [50, 100, 150, 200]  # Resumed at 100.
  difference = max_difference(resumed, straight, 200)
  print(f"4 logical CPUs -> 2 at step 100: max |dw| at 200 = {difference:.3g}")
  assert difference <= TOLERANCE


@pytest.mark.parametrize("cpu_devices", [1, 2],
                         ids=["to_1_replica", "to_2_logical_cpus"])
def test_two_workers_resume_as_one_process(tmp_path, cpu_devices):
  """2 workers x 1 CPU -> 1 process, with 1 replica or with 2 as before.

  With 2 logical CPUs the replicas and their all-reduce are the same as on
  the 2 workers (a RING sum of 2 values), so nothing may differ at all.
  """
  resumed, straight = tmp_path / "resumed", tmp_path / "straight"
  results = run_workers([*COMMON, "--train_steps=100",
                         f"--model_dir={resumed}"], 2)
  assert [r.returncode for r in results] == [0, 0], results[0].stdout[-3000:]
  assert ("MultiWorkerMirroredStrategy with 2 replica(s)"
          in results[0].stdout)
  train_here([f"--cpu_devices={cpu_devices}", "--train_steps=200",
              f"--model_dir={resumed}"])
  train_here([f"--cpu_devices={cpu_devices}", "--train_steps=200",
              f"--model_dir={straight}"])
  assert logged_train_steps(resumed) == [50, 100, 150, 200]
  difference = max_difference(resumed, straight, 200)
  print(f"2 workers -> 1 process of {cpu_devices} replica(s) at step 100:"
        f" max |dw| at 200 = {difference:.3g}")
  assert difference <= (TOLERANCE if cpu_devices == 1 else 0.0)
