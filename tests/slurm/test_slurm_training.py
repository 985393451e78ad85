"""The harness under a real Slurm: srun tasks, preemption and requeue."""

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from tests.processes import REPO_ROOT, harness_env

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SBATCH_SCRIPT = os.path.join(REPO_ROOT, "launch", "deploy", "train.sbatch")


def free_port_base(count: int = 2) -> int:
  """A port p such that p .. p + count - 1 are free on this machine."""
  for _ in range(100):
    with socket.socket() as probe:
      probe.bind(("", 0))
      base = probe.getsockname()[1]
    if base + count > 65535:
      continue
    try:
      for port in range(base, base + count):
        with socket.socket() as probe:
          probe.bind(("", port))
      return base
    except OSError:
      continue
  raise AssertionError("no free port range")


def job_field(job_id: str, field: str) -> str:
  shown = subprocess.run(["scontrol", "show", "job", job_id],
                         capture_output=True, text=True, check=False).stdout
  match = re.search(rf"\b{field}=(\S+)", shown)
  return match.group(1) if match else ""


def train_steps(model_dir) -> list[int]:
  path = model_dir / "metrics.jsonl"
  if not path.exists():
    return []
  return [row["step"] for row in map(json.loads,
                                     path.read_text().splitlines())
          if row.get("split") == "train"]


def test_srun_two_tasks_form_one_multi_worker_run(slurm_cluster, tmp_path):
  model_dir = tmp_path / "run"
  result = subprocess.run(
      ["srun", "-p", slurm_cluster.default_partition, "-n2",
       sys.executable, "-m", "launch", f"--model_dir={model_dir}",
       "--train_steps=200", f"--slurm_port_base={free_port_base()}"],
      env=harness_env(), cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=300, check=False)
  output = result.stdout + result.stderr
  assert result.returncode == 0, output[-3000:]
  assert output.count("Strategy MultiWorkerMirroredStrategy with 2"
                      " replica(s)") == 2
  assert "Final eval at step 200" in output
  assert "Traceback" not in output


def test_the_batch_script_itself_is_refused(slurm_cluster, tmp_path):
  script = tmp_path / "direct.sh"
  script.write_text(f"#!/bin/bash\n{sys.executable} -m launch"
                    f" --model_dir={tmp_path / 'run'} --train_steps=10\n"
                    "echo exit=$?\n")
  result = subprocess.run(
      ["sbatch", "--wait", "-p", slurm_cluster.default_partition,
       "--ntasks=2", f"--output={tmp_path}/out.txt", f"--chdir={REPO_ROOT}",
       str(script)],
      env=harness_env(), capture_output=True, text=True, timeout=120,
      check=False)
  output = (tmp_path / "out.txt").read_text()
  assert result.returncode == 0, result.stderr + output
  assert [line for line in output.splitlines()
          if line.startswith("error:")] == [
              "error: this is the batch script of a Slurm job of 2 tasks, not"
              " one of its tasks; start the workers with srun (srun python -m"
              " launch ...), which runs one per task."]
  assert "exit=2" in output
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("scancel", [
    ["--signal=USR1"],  # To the tasks, as #SBATCH --signal=USR1@120 does.
    ["--signal=TERM"],  # To the tasks, as most preemption notices.
], ids=["usr1", "term"])
def test_preemption_saves_requeues_resumes_and_completes(slurm_cluster,
                                                         tmp_path, scancel):
  model_dir = tmp_path / "run"
  submitted = subprocess.run(
      ["sbatch", "--parsable", "-p", slurm_cluster.default_partition,
       "--ntasks=2", f"--output={tmp_path}/job.out", f"--chdir={REPO_ROOT}",
       SBATCH_SCRIPT, f"--model_dir={model_dir}", "--train_steps=8000",
       "--checkpoint_every=1000", "--steps_per_loop=50"],
      env=harness_env(PYTHON=sys.executable,
                      SLURM_PORT_BASE=str(free_port_base())),
      capture_output=True, text=True, timeout=60, check=False)
  assert submitted.returncode == 0, submitted.stderr
  job_id = submitted.stdout.strip().split(";")[0]
  try:
    deadline = time.monotonic() + 180
    while max(train_steps(model_dir), default=0) < 300:
      assert time.monotonic() < deadline, (tmp_path / "job.out").read_text()
      time.sleep(0.5)
    subprocess.run(["scancel", *scancel, job_id], check=True)
    deadline = time.monotonic() + 300
    while job_field(job_id, "JobState") != "COMPLETED":
      assert job_field(job_id, "JobState") not in ("FAILED", "CANCELLED",
                                                   "TIMEOUT"), (
                                                       (tmp_path / "job.out")
                                                       .read_text()[-3000:])
      assert time.monotonic() < deadline, (tmp_path / "job.out").read_text()
      time.sleep(1)
  finally:
    subprocess.run(["scancel", job_id], check=False)
  output = (tmp_path / "job.out").read_text()
  assert job_field(job_id, "Restarts") == "1", output[-3000:]
  assert job_field(job_id, "ExitCode") == "0:0"
  assert "tfharness: run 1 of job" in output
  assert "stopped after saving a checkpoint; requeueing" in output
  assert "tfharness: run 2 of job" in output
  assert "Final eval at step 8000" in output
  assert "Traceback" not in output
  # The second run resumed where the first saved: no step lost or repeated.
  steps = train_steps(model_dir)
  stopped_at = int(re.search(r"stopped at step (\d+) on request",
                             output).group(1))
  assert 300 <= stopped_at < 8000
  assert steps == sorted(set(steps)) and steps[-1] == 8000
  assert stopped_at in steps
