"""`nan_retries`: a non-finite loss rolls back, lowers the rate, goes on.

The NaN comes the way a user meets it: plain SGD at a learning rate that
diverges on the digits (10: NaN within 30 steps; 2.5 trains), or a row of
the user's data holding an inf.
"""

import csv
import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import from_arrays
from launch import fit
from launch.errors import RunFailed
from tests import checkpoints
from tests.processes import run_workers

DIVERGING = dict(model="mlp", optimizer="sgd", momentum=0.0,
                 learning_rate=10.0, train_steps=120, steps_per_loop=10,
                 checkpoint_every=20, keep_checkpoints=10,
                 global_batch_size=32, deterministic=True, seed=1,
                 progress="none")


def _digits(inf_row: int | None = None):
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  features = (digits.images / 16.0).astype(np.float32).reshape(-1, 64)
  if inf_row is not None:
    features[inf_row, 3] = np.inf
  return (from_arrays(features[:1437], digits.target[:1437]),
          from_arrays(features[1437:], digits.target[1437:]))


def _rows(model_dir, split):
  with open(model_dir / "metrics.jsonl", encoding="utf-8") as stream:
    rows = [json.loads(line) for line in stream]
  return [row for row in rows if row["split"] == split]


@pytest.mark.parametrize("cpu_devices", [1, 2])
def test_a_diverging_rate_rolls_back_halves_and_finishes(tmp_path,
                                                         cpu_devices):
  train, test = _digits()
  model_dir = tmp_path / "run"
  result = fit(None, train, eval_data=test, model_dir=str(model_dir),
               nan_retries=4, cpu_devices=cpu_devices, **DIVERGING)
  assert result.step == 120
  recoveries = _rows(model_dir, "recovery")
  assert [row["retry"] for row in recoveries] == [1, 2]
  assert [row["learning_rate"] for row in recoveries] == [5.0, 2.5]
  for row in recoveries:  # Back to a checkpoint before the failing loop.
    assert row["restored_step"] % 20 == 0
    assert row["restored_step"] < row["step"]
  # The second rollback went further back: ckpt-20 had failed again.
  assert [row["restored_step"] for row in recoveries] == [20, 0]
  train_rows = _rows(model_dir, "train")
  assert train_rows[-1]["learning_rate"] == 2.5
  assert all(np.isfinite(row["loss"]) for row in train_rows)
  for weight in result.model.weights:
    assert np.all(np.isfinite(weight.numpy()))
  # metrics.csv's one row (one epoch) averages the loops of the path kept.
  kept = []
  with open(model_dir / "metrics.jsonl", encoding="utf-8") as stream:
    for row in map(json.loads, stream):
      if row["split"] == "train":
        kept.append(row)
      elif row["split"] == "recovery":
        kept = [k for k in kept if k["step"] <= row["restored_step"]]
  assert [row["step"] for row in kept] == list(range(10, 121, 10))
  with open(model_dir / "metrics.csv", encoding="utf-8") as stream:
    csv_rows = list(csv.DictReader(stream))
  assert [int(row["step"]) for row in csv_rows] == [120]
  assert float(csv_rows[0]["loss"]) == pytest.approx(
      np.mean([row["loss"] for row in kept]), rel=1e-6)
  state = json.loads((model_dir / "checkpoints" /
                      "nan_recoveries.json").read_text())
  assert [r["restored_step"] for r in state["rollbacks"]] == [20, 0]
  tags = _tensorboard_tags(model_dir / "summaries" / "train")
  assert {"recovery/retry", "recovery/restored_step", "recovery"} <= tags


def _tensorboard_tags(directory) -> set:
  from tensorboard.backend.event_processing import event_accumulator
  accumulator = event_accumulator.EventAccumulator(
      str(directory), size_guidance={"tensors": 0})
  accumulator.Reload()
  return set(accumulator.Tags()["tensors"])


@pytest.mark.slow
@pytest.mark.parametrize("schedule, restored, kill_points", [
    (dict(learning_rate=10.0), [20, 0], (0, 40)),
    # A schedule: lowered by a factor that only the state file holds.
    (dict(learning_rate=12.0, lr_schedule="warmup_cosine", warmup_steps=60),
     [40, 60, 40], (40, 60))], ids=["constant", "warmup_cosine"])
def test_killed_after_a_rollback_resumes_bitwise_equal(tmp_path, schedule,
                                                       restored, kill_points):
  """Killed after the last rollback, before the next save (resumes at its
  target) or after it (a checkpoint written at the lowered rate): the same
  final checkpoint as the uninterrupted run."""
  train, test = _digits()
  straight = tmp_path / "straight"
  options = dict(DIVERGING, **schedule)
  fit(None, train, eval_data=test, model_dir=str(straight), nan_retries=4,
      **options)
  assert [row["restored_step"] for row in _rows(straight, "recovery")] == (
      restored)
  expected = checkpoints.checkpoint_arrays(straight / "checkpoints")
  for killed_at in kill_points:
    resumed = tmp_path / f"killed-{killed_at}"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "export")
    for step, prefix in checkpoints.checkpointing.list_checkpoints(
        str(resumed / "checkpoints")):
      if step > killed_at:
        for path in tf.io.gfile.glob(prefix + ".*"):
          tf.io.gfile.remove(path)
    result = fit(None, train, eval_data=test, model_dir=str(resumed),
                 nan_retries=4, **options)
    assert result.step == 120
    assert _rows(resumed, "recovery") == _rows(straight, "recovery")
    got = checkpoints.checkpoint_arrays(resumed / "checkpoints")
    assert got.keys() == expected.keys()
    for name, value in expected.items():
      np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_without_retries_the_run_stops_and_names_the_option(tmp_path):
  train, test = _digits()
  with pytest.raises(RunFailed, match="in the steps up to 30; .*nan_retries"):
    fit(None, train, eval_data=test, model_dir=str(tmp_path), **DIVERGING)


def _user_model():
  model = keras.Sequential([keras.Input(shape=(64,)),
                            keras.layers.Dense(32, activation="relu"),
                            keras.layers.Dense(10)])
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), metrics=["accuracy"])
  return model


def test_an_inf_in_the_data_fails_the_same_steps_and_gives_up(tmp_path):
  train, test = _digits(inf_row=700)
  with pytest.raises(RunFailed) as raised:
    fit(_user_model, train, eval_data=test, model_dir=str(tmp_path),
        global_batch_size=32, train_steps=200, steps_per_loop=10,
        checkpoint_every=20, nan_retries=2, deterministic=True,
        progress="none")
  message = str(raised.value)
  assert "again after 2 rollback(s)" in message
  assert "look for an inf or NaN in their data" in message
  recoveries = _rows(tmp_path, "recovery")
  assert len(recoveries) == 2
  assert recoveries[0]["learning_rate"] == pytest.approx(5e-4)
  assert recoveries[1]["learning_rate"] == pytest.approx(2.5e-4)


@pytest.mark.slow
def test_two_workers_roll_back_to_the_same_step(tmp_path):
  """Both workers roll back at the same loops to the same checkpoints,
  then give up together once the retries are used."""
  model_dir = tmp_path / "run"
  args = ["--model=mlp", "--optimizer=sgd", "--learning_rate=1e12",
          "--train_steps=120", "--steps_per_loop=10",
          "--checkpoint_every=20", "--global_batch_size=32", "--seed=1",
          "--nan_retries=2", f"--model_dir={model_dir}"]
  results = run_workers(args, 2)
  assert [r.returncode for r in results] == [1, 1], results[0].stdout[-2000:]
  lines = [[line.split("warning: ", 1)[1] for line in r.stdout.splitlines()
            if "rolled back to step" in line] for r in results]
  assert len(lines[0]) == 2 and lines[0] == lines[1]
  for result in results:
    assert "error: the training loss became nan in the steps up to" in (
        result.stdout)
    assert "again after 2 rollback(s)" in result.stdout
    assert "Traceback" not in result.stdout
  recoveries = _rows(model_dir, "recovery")
  assert [f"rolled back to step {row['restored_step']}," for row in
          recoveries] == [line.split("; ")[1].split(" learning")[0]
                          for line in lines[0]]
