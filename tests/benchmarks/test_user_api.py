"""benchmarks/user_api.py runs end to end and reports both ratios."""

import json
import subprocess
import sys

import pytest

from tests.processes import REPO_ROOT, harness_env


@pytest.mark.slow
def test_quick_run_reports_both_ratios(tmp_path):
  output = tmp_path / "result.json"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.user_api", "--quick",
       f"--output={output}"], env=harness_env(), cwd=REPO_ROOT,
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "image pipeline / cnn consumption" in result.stdout
  measured = json.loads(output.read_text())
  assert set(measured["examples_per_sec"]) == {
      "images", "cnn", "compiled_mlp", "harness_mlp"}
  assert all(rate > 0 for rate in measured["examples_per_sec"].values())
  assert measured["images_over_cnn"] > 0
  assert measured["compiled_over_harness"] > 0
