"""A sidecar evaluator task, and --mode=evaluate on a finished run."""

import json
import subprocess
import sys

import pytest

from tests.processes import REPO_ROOT, free_port, harness_env, run_launch

pytestmark = pytest.mark.slow

FLAGS = ["--train_steps=1500", "--checkpoint_every=250", "--steps_per_loop=50",
         "--eval_every=250", "--eval_timeout=90"]


def read_jsonl(path):
  with open(path, encoding="utf-8") as stream:
    return [json.loads(line) for line in stream]


def test_sidecar_evaluator_follows_checkpoints_to_the_final_step(tmp_path):
  model_dir = tmp_path / "run"
  cluster = {"chief": [f"localhost:{free_port()}"],
             "worker": [f"localhost:{free_port()}"],
             "evaluator": [f"localhost:{free_port()}"]}
  processes, logs = {}, {}
  try:
    for role in ("chief", "worker", "evaluator"):
      logs[role] = open(tmp_path / f"{role}.log", "w+")
      tf_config = json.dumps({"cluster": cluster,
                              "task": {"type": role, "index": 0}})
      processes[role] = subprocess.Popen(
          [sys.executable, "-m", "launch", *FLAGS, f"--model_dir={model_dir}"],
          env=harness_env(TF_CONFIG=tf_config), cwd=REPO_ROOT,
          stdout=logs[role], stderr=subprocess.STDOUT)
    for role, process in processes.items():
      assert process.wait(timeout=180) == 0, (tmp_path / f"{role}.log"
                                             ).read_text()[-3000:]
  finally:
    for process in processes.values():
      if process.poll() is None:
        process.kill()
    for log in logs.values():
      log.close()
  evaluator_output = (tmp_path / "evaluator.log").read_text()
  assert "OneDeviceStrategy" in evaluator_output
  assert "Final eval at step 1500" in evaluator_output
  eval_steps = [r["step"] for r in read_jsonl(model_dir / "metrics.jsonl")
                if r["split"] == "evaluate"]
  # Only the evaluator evaluates; it ends on the final checkpoint.
  assert eval_steps and eval_steps[-1] == 1500
  assert eval_steps == sorted(set(eval_steps))
  assert "Final eval" not in (tmp_path / "chief.log").read_text()


def test_evaluate_mode_scores_the_latest_checkpoint(tmp_path):
  model_dir = tmp_path / "run"
  trained = run_launch(["--train_steps=200", f"--model_dir={model_dir}"])
  assert trained.returncode == 0, trained.stderr[-2000:]
  evaluated = run_launch(["--mode=evaluate", "--cpu_devices=2",
                          f"--model_dir={model_dir}"])
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  assert (evaluated.stdout.strip().splitlines()[-1].split(":")[1]
          == trained.stdout.strip().splitlines()[-1].split(":")[1])
  # Told apart from the in-training validation in every file.
  assert [r["split"] for r in read_jsonl(model_dir / "metrics.jsonl")
          if r["split"] != "train"] == ["eval", "evaluate"]
  assert (model_dir / "summaries" / "evaluate").is_dir()
  with open(model_dir / "evaluate.csv", encoding="utf-8") as stream:
    header, row = [line.split(",") for line in stream.read().splitlines()]
  assert header[:4] == ["epoch", "step", "time", "loss"]
  assert row[1] == "200" and "val_loss" not in header
  assert "checkpoint of step 200: loss" in evaluated.stderr
  missing = run_launch(["--mode=evaluate", f"--model_dir={tmp_path / 'none'}"])
  assert missing.returncode == 2
  assert "found no checkpoint" in missing.stderr
  assert not (tmp_path / "none").exists()
