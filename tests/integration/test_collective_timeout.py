"""A peer that is alive but stuck: the watchdog ends every worker."""

import subprocess
import sys
import time

import pytest

from tests.processes import REPO_ROOT, harness_env, worker_tf_configs

pytestmark = pytest.mark.slow

# Worker 1 hangs inside its first step, in Python, while staying alive (so
# TensorFlow's heartbeats see nothing wrong); worker 0 waits in the
# all-reduce for it.
STUCK_SCRIPT = '''
import json, os, time
import tensorflow as tf
from launch import main
from trainer.model import Model

STUCK = json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1


class StuckModel(Model):

  def train_step(self, data):
    if STUCK:
      tf.py_function(lambda: time.sleep(3600), [], [])
    return super().train_step(data)


if __name__ == "__main__":
  main.run(model_class=StuckModel)
'''


def test_survivor_fails_after_the_collective_timeout(tmp_path):
  script = tmp_path / "stuck.py"
  script.write_text(STUCK_SCRIPT)
  processes = []
  try:
    for tf_config in worker_tf_configs(2):
      processes.append(subprocess.Popen(
          [sys.executable, str(script), "--collective_timeout=10",
           "--train_steps=100", f"--model_dir={tmp_path / 'run'}"],
          env=harness_env(TF_CONFIG=tf_config), cwd=REPO_ROOT,
          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    started = time.monotonic()
    for process in processes:  # The stuck one too: its loop never ends.
      output, _ = process.communicate(timeout=120)
      assert process.returncode == 1, output[-3000:]
      assert "Traceback" not in output
      assert ("error: the run stopped because a peer worker failed or a"
              " collective timed out (a training loop took more than 10 s)."
              in output)
    assert time.monotonic() - started < 60
  finally:
    for process in processes:
      process.kill()
      process.wait()
