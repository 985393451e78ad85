"""benchmarks/gpu_scaling.py: its plan and table, and its CPU smoke run."""

import json
import re
import subprocess
import sys

import pytest

from benchmarks import gpu_scaling
from benchmarks.gpu_scaling import Config
from tests.processes import REPO_ROOT, harness_env


@pytest.mark.parametrize("available, counts", [
    (1, [1]), (2, [1, 2]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]),
    (8, [1, 2, 4, 8])])
def test_gpu_counts_double_up_to_the_node(available, counts):
  assert gpu_scaling.default_device_counts(available) == counts


def test_plan_is_one_process_then_each_dividing_worker_count():
  assert gpu_scaling.plan(["mlp"], [1, 2, 4], ["gpus", "2", "3"]) == [
      Config("mlp", 1, 1),
      Config("mlp", 2, 1), Config("mlp", 2, 2),
      Config("mlp", 4, 1), Config("mlp", 4, 2), Config("mlp", 4, 4)]


def test_commands_keep_the_per_gpu_batch():
  one = gpu_scaling.command(Config("cnn", 4, 1), smoke=False, batch=256,
                            steps=1000, steps_per_loop=100, model_dir="/d")
  assert one[1:4] == ["-m", "launch", "--strategy=mirrored"]
  assert "--global_batch_size=1024" in one
  workers = gpu_scaling.command(Config("cnn", 4, 2), smoke=True, batch=32,
                                steps=40, steps_per_loop=10, model_dir="/d")
  assert workers[1:4] == ["-m", "launch.local", "--workers=2"]
  assert "--global_batch_size=128" in workers
  assert "--cpu_devices=2" in workers


def test_warm_up_loop_is_left_out(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [{"split": "train", "step": 10, "examples_per_sec": 10.0},
          {"split": "train", "step": 20, "examples_per_sec": 100.0},
          {"split": "eval", "step": 20, "loss": 1.0},
          {"split": "train", "step": 30, "examples_per_sec": 120.0},
          {"split": "train", "step": 40, "examples_per_sec": 110.0}]
  path.write_text("".join(json.dumps(row) + "\n" for row in rows))
  assert gpu_scaling.examples_per_sec(str(path)) == 110.0


def test_table_reads_speedup_and_efficiency_against_one_gpu():
  text = gpu_scaling.table([(Config("mlp", 1, 1), 1000.0),
                            (Config("mlp", 2, 1), 1800.0),
                            (Config("mlp", 2, 2), 1500.0)], unit="GPU")
  assert text.splitlines()[3] == (
      "| mlp | 1 process (mirrored) | 2 | 1 | 1,800 | 1.80 | 90 % |")
  assert text.splitlines()[4] == (
      "| mlp | 2 workers x 1 GPU | 2 | 2 | 1,500 | 1.50 | 75 % |")


@pytest.mark.slow
def test_cpu_smoke_prints_the_table():
  result = subprocess.run(
      [sys.executable, "-m", "benchmarks.gpu_scaling", "--cpu_smoke"],
      env=harness_env(), cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=600, check=False)
  print(result.stdout, result.stderr, sep="\n")
  assert result.returncode == 0, result.stderr
  rows = [line for line in result.stdout.splitlines()
          if line.startswith("| mlp |")]
  assert [row.split("|")[2].strip() for row in rows] == [
      "1 process (one_device)", "1 process (mirrored)", "2 workers x 1 CPU"]
  for row in rows:
    assert re.search(r"\| [\d,]+ \| \d+\.\d\d \| \d+ % \|$", row), row
