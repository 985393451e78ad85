"""TFRecord input end to end: the writer tool, training, exact resume."""

import subprocess
import sys

import numpy as np
import pytest

from datasets import catalogue
from tests.integration.test_fault_tolerance import (RESUME_FLAGS,
                                                    assert_bitwise_equal,
                                                    weights)
from tests.processes import REPO_ROOT, harness_env, run_launch, run_workers

pytestmark = pytest.mark.slow


def write_tool(args):
  return subprocess.run([sys.executable, "-m", "launch.write_tfrecords",
                         *args], env=harness_env(), capture_output=True,
                        text=True, timeout=120, cwd=REPO_ROOT, check=False)


@pytest.fixture(scope="module")
def digits_records(tmp_path_factory):
  """Digits as 3 training files (uneven over 2 workers) and 2 eval files."""
  directory = tmp_path_factory.mktemp("records")
  x_train, y_train, x_test, y_test = catalogue.digits_arrays()
  np.savez(directory / "digits.npz", x_train=x_train, y_train=y_train,
           x_test=x_test, y_test=y_test)
  result = write_tool([f"--input={directory / 'digits.npz'}",
                       f"--output_dir={directory / 'tfrecord'}", "--shards=3",
                       "--eval_shards=2", "--feature_scale=0.0625"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert ("Wrote 1437 training examples in 3 files and 360 eval examples in"
          " 2") in result.stdout
  return directory / "tfrecord"


def test_two_workers_shard_files_and_resume_exactly(tmp_path, digits_records):
  # Worker 0 reads files 0 and 2, worker 1 file 1; each with 2 replicas.
  # (Resume on one process is tested on the stream in
  # tests/datasets/test_tfrecord.py.)
  flags = [*RESUME_FLAGS, "--dataset=tfrecord", "--cpu_devices=2",
           f"--data_dir={digits_records}", "--shuffle_buffer=500", "--cache"]
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  for model_dir, steps in ((straight, 200), (resumed, 120), (resumed, 200)):
    results = run_workers([*flags, f"--train_steps={steps}",
                           f"--model_dir={model_dir}"], 2)
    assert [r.returncode for r in results] == [0, 0], results[0].stdout[-2000:]
  final = [line for line in results[0].stdout.splitlines()
           if line.startswith("Final eval")][-1]
  assert final.endswith("(360 examples)")  # Each eval example once.
  assert float(final.split("accuracy ")[1].split()[0]) >= 0.9
  assert_bitwise_equal(weights(straight, 200), weights(resumed, 200))


@pytest.mark.parametrize("args,message", [
    (["--input=/nonexistent.npz", "--output_dir={d}/out"], "does not exist"),
    (["--input={d}/bad.npz", "--output_dir={d}/out"], "lacks y_train"),
    (["--input={d}/good.npz", "--output_dir={d}/out", "--shards=0"],
     "0 train shards for 5 examples"),
    (["--input={d}/good.npz"], "--input and --output_dir are required"),
    (["--input={d}/train.csv", "--output_dir={d}/out"],
     "--input={d}/train.csv needs --eval_input for the eval split."),
    (["--input={d}/train.csv", "--eval_input={d}/bad.csv",
      "--label_column=label", "--output_dir={d}/out"],
     "{d}/bad.csv line 3 column 'b' holds 'x', not a number"),
    (["--input={d}/train.csv", "--eval_input={d}/train.csv",
      "--output_dir={d}/out"], "CSV input needs --label_column"),
    (["--input={d}", "--eval_input={d}", "--output_dir={d}/out"],
     "image input needs --image_size=HEIGHT,WIDTH"),
])
def test_write_tool_bad_input_exits_2_and_leaves_nothing(tmp_path, args,
                                                          message):
  np.savez(tmp_path / "bad.npz", x_train=np.zeros((5, 2)))
  np.savez(tmp_path / "good.npz", x_train=np.zeros((5, 2)),
           y_train=np.zeros(5), x_test=np.zeros((2, 2)), y_test=np.zeros(2))
  (tmp_path / "train.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
  (tmp_path / "bad.csv").write_text("a,b,label\n1,2,0\n3,x,1\n")
  result = write_tool([arg.format(d=tmp_path) for arg in args])
  assert result.returncode == 2
  assert message.format(d=tmp_path) in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "out").exists()


def test_tfrecord_without_data_dir_exits_2(tmp_path):
  result = run_launch(["--dataset=tfrecord", f"--model_dir={tmp_path}"])
  assert result.returncode == 2
  assert "needs --data_dir" in result.stderr


def test_write_tool_takes_csv_files_and_they_train(tmp_path):
  rng = np.random.default_rng(0)
  for name, count in (("train", 200), ("test", 50)):
    x = rng.normal(size=(count, 3))
    kind = np.where(x[:, 0] > 0, "high", "low")
    (tmp_path / f"{name}.csv").write_text("a,b,c,kind\n" + "".join(
        f"{a},{b},{c},{k}\n" for (a, b, c), k in zip(x, kind)))
  out = tmp_path / "records"
  result = write_tool([f"--input={tmp_path / 'train.csv'}",
                       f"--eval_input={tmp_path / 'test.csv'}",
                       "--label_column=kind", f"--output_dir={out}",
                       "--shards=2"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert "Wrote 200 training examples in 2 files and 50 eval" in (
      result.stdout)
  assert sorted(p.name for p in out.iterdir()) == [
      "dataset.json", "eval-00000-of-00001.tfrecord", "record_counts.json",
      "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
  trained = run_launch(["--dataset=tfrecord", f"--data_dir={out}",
                        f"--model_dir={tmp_path / 'model'}",
                        "--train_steps=60", "--global_batch_size=20"])
  assert trained.returncode == 0, trained.stderr[-2000:]
  final = [line for line in trained.stdout.splitlines()
           if line.startswith("Final eval")][-1]
  assert final.endswith("(50 examples)")
