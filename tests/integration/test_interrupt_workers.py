"""Two workers running `fit`: a KeyboardInterrupt on one is a stop agreed by
both, saved at the same step; the next `fit` of both resumes from it."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

from tests.processes import REPO_ROOT, harness_env, worker_tf_configs

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""\
    import json, os, sys
    import keras
    import numpy as np
    from datasets import from_arrays
    from launch import fit
    from launch.errors import Preempted

    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")


    def model_fn():
      model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(2)])
      model.compile(optimizer="sgd", metrics=["accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
      return model


    class InterruptsWorker0(keras.callbacks.Callback):
      def on_epoch_end(self, epoch, logs=None):
        if task == 0 and epoch == 1:
          raise KeyboardInterrupt


    callbacks = [InterruptsWorker0()] if sys.argv[2] == "interrupt" else []
    try:
      result = fit(model_fn, from_arrays(x, y), eval_data=from_arrays(x, y),
                   model_dir=sys.argv[1], global_batch_size=32,
                   train_steps=40, steps_per_loop=5, eval_every=10,
                   checkpoint_every=0, progress="none", callbacks=callbacks)
      print(f"task {task} finished at step {result.step}", flush=True)
    except KeyboardInterrupt:
      print(f"task {task} KeyboardInterrupt", flush=True)
    except Preempted as stopped:
      print(f"task {task} Preempted at step {stopped.step}", flush=True)
    """)


def run_workers(script, *args, timeout=240):
  processes, logs = [], []
  try:
    for tf_config in worker_tf_configs(2):
      log = tempfile.TemporaryFile(mode="w+")
      logs.append(log)
      processes.append(subprocess.Popen(
          [sys.executable, str(script), *args], cwd=REPO_ROOT,
          env=harness_env(TF_CONFIG=tf_config), stdout=log,
          stderr=subprocess.STDOUT, text=True))
    outputs = []
    for process, log in zip(processes, logs):
      code = process.wait(timeout=timeout)
      log.seek(0)
      outputs.append(log.read())
      assert code == 0, outputs[-1][-3000:]
    return outputs
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
    for log in logs:
      log.close()


def test_an_interrupt_on_one_worker_is_agreed_saved_and_resumed(tmp_path):
  script = tmp_path / "train.py"
  script.write_text(SCRIPT)
  model_dir = str(tmp_path / "run")
  first = run_workers(script, model_dir, "interrupt")
  assert "task 0 KeyboardInterrupt" in first[0], first[0][-3000:]
  assert "task 1 Preempted at step 20" in first[1], first[1][-3000:]
  checkpoints = os.listdir(os.path.join(model_dir, "checkpoints"))
  assert "ckpt-20.index" in checkpoints
  second = run_workers(script, model_dir, "plain")
  assert "Resuming from step 20 of 40" in second[0], second[0][-3000:]
  for task, output in enumerate(second):
    assert f"task {task} finished at step 40" in output, output[-3000:]
  with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
    assert json.load(f)["train"]["train_steps"] == 40
