"""`python -m launch` on 1, 2 and 4 logical CPUs: same weights, same eval."""

import json

import numpy as np
import pytest

from tests import checkpoints
from tests.processes import run_launch

FLAGS = ["--dataset=digits", "--global_batch_size=64", "--train_steps=100",
         "--seed=3", "--deterministic", "--l2=1e-4", "--optimizer=sgd",
         "--learning_rate=0.05", "--metrics=accuracy,precision,recall,auc"]


def final_eval(model_dir):
  with open(model_dir / "metrics.jsonl", encoding="utf-8") as stream:
    lines = [json.loads(line) for line in stream]
  return [line for line in lines if line["split"] == "eval"][-1]


@pytest.mark.slow  # Seven in-process runs, ~26 s.
def test_replica_counts_agree_and_reruns_are_bitwise_equal(tmp_path):
  weights, evals = {}, {}
  for name, cpu_devices in (("1", 1), ("2", 2), ("4", 4), ("2-again", 2)):
    model_dir = tmp_path / name
    result = run_launch([*FLAGS, f"--cpu_devices={cpu_devices}",
                         f"--model_dir={model_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    weights[name] = checkpoints.restored_weights(
        model_dir / "checkpoints", expected_step=100, optimizer="sgd")
    evals[name] = final_eval(model_dir)
  for name in ("2", "4"):
    for expected, actual in zip(weights["1"], weights[name]):
      np.testing.assert_allclose(actual, expected, atol=1e-5)
    assert evals[name]["examples"] == evals["1"]["examples"] == 360
    assert evals[name]["accuracy"] == evals["1"]["accuracy"]
  for first, second in zip(weights["2"], weights["2-again"]):
    np.testing.assert_array_equal(first, second)
