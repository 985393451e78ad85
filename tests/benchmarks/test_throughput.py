"""benchmarks/throughput.py runs end to end and reports every variant."""

import json
import subprocess
import sys

import pytest

from tests.processes import REPO_ROOT, harness_env


@pytest.mark.slow
def test_brief_run_measures_the_three_loops(tmp_path):
  output = tmp_path / "result.json"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.throughput", "--models=mlp",
       "--replicas=1", "--rounds=1", "--loop_steps=5", "--measured_loops=1",
       f"--output={output}"],
      env=harness_env(), cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| mlp | 1 |" in result.stdout
  measured = json.loads(output.read_text())
  (row,) = measured["rows"]
  for variant in ("harness", "fused", "keras_fit"):
    assert row[variant] > 0 and row[f"{variant}_rss_mb"] > 0
  assert 0 <= row["input_stall"] < 1
  assert len(measured["runs"]) == 3
