"""benchmarks/multi_worker.py runs, and a step holds exactly one collective."""

import json
import subprocess
import sys

import pytest

from tests.processes import REPO_ROOT, harness_env


@pytest.mark.slow
def test_brief_run_counts_one_all_reduce_per_step(tmp_path):
  output = tmp_path / "result.json"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.multi_worker", "--train_steps=300",
       "--rounds=1", "--profile_steps=50", "--warmup_loops=1",
       f"--output={output}"],
      env=harness_env(), cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| 2 workers x 1 CPU |" in result.stdout
  measured = json.loads(output.read_text())
  assert measured["one_process"] > 0 and measured["local_workers"] > 0
  # Only the gradient all-reduce: no per-step partial-batch check (the
  # training stream is infinite) and no per-step metric collectives.
  assert measured["collectives_per_step"] == 1.0, measured["ops"]
  assert 0 < measured["collective_share"] < 1
