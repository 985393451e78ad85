"""Real MultiWorkerMirroredStrategy runs: worker processes on localhost."""

import os

import numpy as np
import pytest

from tests import checkpoints
from tests.integration.conftest import FLAGS, STEPS
from tests.processes import run_workers

pytestmark = pytest.mark.slow


def model_variables(checkpoint_dir):
  return checkpoints.restored_weights(checkpoint_dir, expected_step=STEPS)


@pytest.mark.parametrize("cpu_devices", [1, 2], ids=["2x1", "2x2"])
def test_two_workers_finish_with_chief_only_files(tmp_path, cpu_devices,
                                                   one_process_reference):
  model_dir, scratch = tmp_path / "run", tmp_path / "scratch"
  scratch.mkdir()
  results = run_workers([*FLAGS, f"--model_dir={model_dir}",
                         f"--cpu_devices={cpu_devices}"], 2,
                        TMPDIR=str(scratch))
  for index, result in enumerate(results):
    assert result.returncode == 0, f"worker {index}:\n{result.stdout[-3000:]}"
  replicas = 2 * cpu_devices
  assert f"with {replicas} replica(s)" in results[1].stdout
  assert f"Final eval at step {STEPS}" in results[0].stdout
  assert "Final eval" not in results[1].stdout

  assert sorted(os.listdir(model_dir)) == [
      "checkpoints", "config.json", "export", "metrics.csv", "metrics.jsonl",
      "summaries"]
  assert sorted(os.listdir(model_dir / "checkpoints")) == [
      "checkpoint", "ckpt-100.data-00000-of-00001", "ckpt-100.index",
      "ckpt-50.data-00000-of-00001", "ckpt-50.index"]
  for split in ("train", "eval"):
    assert len(os.listdir(model_dir / "summaries" / split)) == 1
  assert os.listdir(scratch) == []  # Worker 1's temp checkpoints are gone.

  # Same global batch and data order: the weights match the 1-process run.
  weights = model_variables(model_dir / "checkpoints")
  assert len(weights) == len(one_process_reference) == 4
  for value, expected in zip(weights, one_process_reference):
    np.testing.assert_allclose(value, expected, atol=1e-5)


def test_deterministic_two_worker_runs_are_bitwise_equal(tmp_path):
  weights = []
  for attempt in range(2):
    model_dir = tmp_path / f"run{attempt}"
    results = run_workers([*FLAGS, f"--model_dir={model_dir}",
                           "--train_steps=40", "--deterministic",
                           "--model=cnn", "--sync_batchnorm"], 2)
    assert [r.returncode for r in results] == [0, 0], results[0].stdout[-2000:]
    weights.append(checkpoints.restored_weights(
        model_dir / "checkpoints", expected_step=40, model="cnn",
        sync_batchnorm=True))
  for first, second in zip(*weights):
    np.testing.assert_array_equal(first, second)
