"""2 real `launch.local` workers on the user's TFRecords with a schema.json.

Planning once counted the records with eager ops, which started
TensorFlow's runtime before MultiWorkerMirroredStrategy was built: both
workers died with "Collective ops must be configured at program startup".
"""

import subprocess
import sys

import pytest

from tests.launch.test_planning_runtime import write_user_tfrecords
from tests.processes import REPO_ROOT, harness_env

pytestmark = pytest.mark.slow


def test_two_workers_train_on_user_tfrecords(tmp_path):
  train = write_user_tfrecords(tmp_path / "train", 128)
  evaluate = write_user_tfrecords(tmp_path / "eval", 32, seed=1)
  model_dir = tmp_path / "run"
  completed = subprocess.run(
      [sys.executable, "-m", "launch.local", "--workers=2",
       f"--train_data={train}", f"--eval_data={evaluate}", "--model=mlp",
       "--train_steps=20", "--steps_per_loop=10", "--global_batch_size=32",
       f"--model_dir={model_dir}"],
      env=harness_env(), cwd=REPO_ROOT, capture_output=True, text=True,
      timeout=240, check=False)
  output = completed.stdout + completed.stderr
  assert completed.returncode == 0, output[-3000:]
  assert "Collective ops must be configured" not in output
  assert "Strategy MultiWorkerMirroredStrategy with 2 replica(s)" in output
  assert "Train data: 128 TFRecord examples in 2 files" in output
  assert "[worker:0] Final eval at step 20" in output
  assert "(32 examples)" in output
  assert (model_dir / "checkpoints" / "checkpoint").exists()
