"""benchmarks/data_scale.py runs end to end (smoke) and reports every variant."""

import json
import subprocess
import sys

import pytest

from benchmarks import data_scale
from tests.processes import REPO_ROOT, harness_env


def test_generated_csv_is_what_from_csv_and_pandas_read(tmp_path):
  path = str(tmp_path / "rows.csv")
  data_scale.write_csv(path, 300, columns=5)
  lines = open(path, encoding="utf-8").read().splitlines()
  assert lines[0] == "label,p0,p1,p2,p3,p4" and len(lines) == 301
  assert all(len(line.split(",")) == 6 for line in lines[1:])


@pytest.mark.slow
def test_smoke_run_reports_every_variant(tmp_path):
  output = tmp_path / "result.json"
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.data_scale", "--smoke",
       f"--work_dir={tmp_path}", f"--output={output}"], env=harness_env(),
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| rows | variant | start-up s | peak RSS MB | examples/s |" in (
      result.stdout)
  runs = json.loads(output.read_text())["2000"]
  assert set(runs) == set(data_scale.VARIANTS)
  for variant, (run,) in runs.items():
    assert run["startup_s"] > 0 and run["examples_per_s"] > 0, variant
    assert 100 < run["peak_rss_mb"] < 20_000, variant
