"""Real MultiWorkerMirroredStrategy runs: worker processes on localhost."""

import os

import numpy as np
import pytest

from tests import checkpoints
from tests.integration.conftest import FLAGS, STEPS
from tests.processes import run_workers

pytestmark = pytest.mark.slow


def model_variables(checkpoint_dir):
  return checkpoints.restored_weights(checkpoint_dir, expected_step=STEPS)


@pytest.mark.parametrize("cpu_devices", [1, 2], ids=["2x1", "2x2"])
def test_two_workers_finish_with_chief_only_files(tmp_path, cpu_devices,
                                                   one_process_reference):
  model_dir, scratch = tmp_path / "run", tmp_path / "scratch"
  scratch.mkdir()
  results = run_workers([*FLAGS, f"--model_dir={model_dir}",
                         f"--cpu_devices={cpu_devices}"], 2,
                        TMPDIR=str(scratch))
  for index, result in enumerate(results):
    assert result.returncode == 0, f"worker {index}:\n{result.stdout[-3000:]}"
  replicas = 2 * cpu_devices
  assert f"with {replicas} replica(s)" in results[1].stdout
  assert f"Final eval at step {STEPS}" in results[0].stdout
  assert "Final eval" not in results[1].stdout

  assert sorted(os.listdir(model_dir)) == [
      "checkpoints", "config.json", "export", "metrics.csv", "metrics.jsonl",
      "summaries"]
  assert sorted(os.listdir(model_dir / "checkpoints")) == [
      "checkpoint", "ckpt-100.data-00000-of-00001", "ckpt-100.index",
      "ckpt-50.data-00000-of-00001", "ckpt-50.index"]
  for split in ("train", "eval"):
    assert len(os.listdir(model_dir / "summaries" / split)) == 1
  assert os.listdir(scratch) == []  # Worker 1's temp checkpoints are gone.

  # Same global batch and data order: the weights match the 1-process run.
  weights = model_variables(model_dir / "checkpoints")
  assert len(weights) == len(one_process_reference) == 4
  for value, expected in zip(weights, one_process_reference):
    np.testing.assert_allclose(value, expected, atol=1e-5)


def test_deterministic_two_worker_runs_are_bitwise_equal(tmp_path):
  weights = []
  for attempt in range(2):
    model_dir = tmp_path / f"run{attempt}"
    results = run_workers([*FLAGS, f"--model_dir={model_dir}",
                           "--train_steps=40", "--deterministic",
                           "--model=cnn", "--sync_batchnorm"], 2)
    assert [r.returncode for r in results] == [0, 0], results[0].stdout[-2000:]
    weights.append(checkpoints.restored_weights(
        model_dir / "checkpoints", expected_step=40, model="cnn",
        sync_batchnorm=True))
  for first, second in zip(*weights):
    np.testing.assert_array_equal(first, second)


def test_a_run_level_warning_is_the_chiefs_alone(tmp_path):
  # Every worker sees the same diverged loss and the same complete
  # model_dir; the terminal of `launch.local` should show each once.
  model_dir = tmp_path / "run"
  args = [f"--model_dir={model_dir}", "--train_steps=40",
          "--steps_per_loop=20", "--learning_rate=5"]
  runs = [run_workers(args, 2) for _ in range(2)]  # The second: complete.
  for results in runs:
    assert [r.returncode for r in results] == [0, 0], results[0].stdout[-2000:]
  diverged, complete = "warning: the training loss ended at", "is complete at"
  assert diverged in runs[0][0].stdout and complete in runs[1][0].stdout
  for results in runs:
    assert diverged not in results[1].stdout
    assert complete not in results[1].stdout


COUNTED_MODULE = '''
import os

import keras
import numpy as np
import tensorflow as tf

from datasets import from_dataset_fn

_DATA = os.path.join(os.path.dirname(__file__), "digits.npz")


def _counted(role):
  def read(input_context):
    # One line per call: which worker built which pipeline.
    with open(os.environ["CALLS_FILE"], "a", encoding="utf-8") as calls:
      calls.write(f"{role} {input_context.input_pipeline_id}"
                  f" of {input_context.num_input_pipelines}\\n")
    with np.load(_DATA) as data:
      features, labels = data["x"], data["y"]
    if role == "eval":
      features, labels = features[1400:], labels[1400:]
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).shard(
        input_context.num_input_pipelines, input_context.input_pipeline_id)
    return dataset.batch(input_context.get_per_replica_batch_size(32),
                         drop_remainder=True)
  return read


def digits():
  return (from_dataset_fn(_counted("train"), num_examples=1797,
                          input_shape=(64,), num_classes=10),
          from_dataset_fn(_counted("eval"), steps=5))


def build():
  model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, "relu"),
                            keras.layers.Dense(10)])
  model.compile(optimizer="adam", metrics=["accuracy"],
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True))
  return model
'''


def test_two_workers_build_each_users_pipeline_once(tmp_path):
  """A model_fn's model on two workers: each worker calls the user's
  dataset function once per pipeline, with its own shard."""
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  np.savez(tmp_path / "digits.npz",
           x=(digits.images / 16.0).astype(np.float32).reshape(-1, 64),
           y=digits.target.astype(np.int32))
  (tmp_path / "counted_digits.py").write_text(COUNTED_MODULE)
  calls = tmp_path / "calls.txt"
  results = run_workers(
      ["--dataset=counted_digits:digits", "--model=counted_digits:build",
       "--train_steps=20", "--steps_per_loop=10", "--global_batch_size=64",
       f"--model_dir={tmp_path / 'run'}"], 2, PYTHONPATH=str(tmp_path),
      CALLS_FILE=str(calls))
  for index, result in enumerate(results):
    assert result.returncode == 0, f"worker {index}:\n{result.stdout[-3000:]}"
  assert "Final eval at step 20" in results[0].stdout
  assert sorted(calls.read_text().splitlines()) == [
      "eval 0 of 2", "eval 1 of 2", "train 0 of 2", "train 1 of 2"]
