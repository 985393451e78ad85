"""Planning a run never starts TensorFlow's runtime (its eager context).

MultiWorkerMirroredStrategy, the logical CPU split and GPU memory settings
must be configured before the runtime starts, and the strategy is built
after planning; so every planning path is run here in a fresh process,
on data written the way a user writes it, and the runtime must still be
down afterwards.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets import tfrecord
from tests.processes import REPO_ROOT, harness_env

# Runs each plan in order in one fresh process; prints, per case, whether
# TensorFlow's runtime had started by its end (the first True is the
# culprit: later cases inherit it).
_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import datasets
from launch import api
from trainer import private_apis

cases, model_dir = json.loads(sys.argv[1]), sys.argv[2]


def parse(record):
  example = tf.io.parse_single_example(record, {
      "x": tf.io.FixedLenFeature([8], tf.float32),
      "label": tf.io.FixedLenFeature([], tf.int64)})
  return example["x"], example["label"]


def dataset_fn(input_context):
  return tf.data.Dataset.from_tensor_slices(
      (np.zeros((16, 4), np.float32), np.zeros(16, np.int32))).batch(4)


results = {}
for name, case in cases.items():
  options = dict(model_dir=f"{model_dir}/{name}", global_batch_size=8,
                 train_steps=5, model="mlp", **case.get("options", {}))
  train = None
  if case.get("source") == "parse_fn":
    train = datasets.from_tfrecords(case["pattern"], parse_fn=parse,
                                    num_classes=2)
  elif case.get("source") == "schema":
    train = datasets.from_tfrecords(
        case["pattern"], features={"x": tf.io.FixedLenFeature([8],
                                                              tf.float32)},
        label="label")
  elif case.get("source") == "dataset_fn":
    train = datasets.from_dataset_fn(dataset_fn, input_shape=(4,),
                                     num_classes=2, num_examples=16)
  elif case.get("source") == "image_split":
    train = datasets.from_image_directory(case["directory"],
                                          image_size=(12, 12))
  api.plan(None, train, options=options, spelling="flags")
  results[name] = private_apis.runtime_started()
if "control" in sys.argv:
  tf.constant(1.0)
  results["control: a TensorFlow op"] = private_apis.runtime_started()
print("RESULTS " + json.dumps(results))
"""


def write_user_tfrecords(directory, count, seed=0):
  """TFRecords of tf.train.Examples plus the schema.json docs/data.md shows."""
  directory.mkdir(parents=True)
  rng = np.random.default_rng(seed)
  for part in range(2):
    with tf.io.TFRecordWriter(str(directory / f"part-{part}.tfrecord")) as w:
      for _ in range(count // 2):
        x = rng.random(8).astype(np.float32)
        w.write(tf.train.Example(features=tf.train.Features(feature={
            "x": tf.train.Feature(float_list=tf.train.FloatList(value=x)),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(
                value=[int(x.sum() > 4)]))})).SerializeToString())
  (directory / "schema.json").write_text(json.dumps(
      {"features": {"x": {"shape": [8], "dtype": "float32"}},
       "label": "label"}))
  return str(directory / "*.tfrecord")


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
  root = tmp_path_factory.mktemp("user_data")
  rng = np.random.default_rng(0)
  x = rng.random((64, 4)).astype(np.float32)
  y = (x.sum(axis=1) > 2).astype(np.int64)
  np.savez(root / "data.npz", x=x, y=y)
  with open(root / "data.csv", "w") as stream:
    stream.write("a,b,c,d,target\n")
    for row, label in zip(x, y):
      stream.write(",".join(f"{v:.4f}" for v in row) + f",{label}\n")
  for name in ("cat", "dog"):
    (root / "images" / name).mkdir(parents=True)
    for index in range(6):
      Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(
          root / "images" / name / f"{index}.png")
  # A directory of `python -m launch.write_tfrecords`.
  tfrecord.write_dataset(str(root / "written"), {
      "train": (rng.integers(0, 255, (40, 6, 6), dtype=np.uint8),
                rng.integers(0, 3, 40)),
      "eval": (rng.integers(0, 255, (8, 6, 6), dtype=np.uint8),
               rng.integers(0, 3, 8))}, num_shards={"train": 2, "eval": 1})
  return {"train": write_user_tfrecords(root / "train", 64),
          "eval": write_user_tfrecords(root / "eval", 16, seed=1),
          "root": root}


def run_plans(cases, model_dir, *extra):
  completed = subprocess.run(
      [sys.executable, "-c", _SCRIPT, json.dumps(cases), str(model_dir),
       *extra], env=harness_env(), cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=300, check=False)
  lines = [line for line in completed.stdout.splitlines()
           if line.startswith("RESULTS ")]
  assert completed.returncode == 0 and lines, completed.stderr[-3000:]
  return json.loads(lines[-1][len("RESULTS "):])


@pytest.mark.slow
def test_no_planning_path_starts_tensorflows_runtime(user_data, tmp_path):
  root = user_data["root"]
  cases = {
      "TFRecords + schema.json by path": {"options": {
          "train_data": user_data["train"], "eval_data": user_data["eval"]}},
      "from_tfrecords with a schema": {"source": "schema",
                                       "pattern": user_data["train"]},
      "from_tfrecords with parse_fn": {"source": "parse_fn",
                                       "pattern": user_data["train"]},
      "npz by path": {"options": {"train_data": str(root / "data.npz"),
                                  "validation_split": 0.25}},
      "csv by path": {"options": {"train_data": str(root / "data.csv"),
                                  "label_column": "target"}},
      "images by path": {"options": {"train_data": str(root / "images"),
                                     "image_size": "12,12"}},
      "images with a validation split": {"source": "image_split",
                                         "directory": str(root / "images"),
                                         "options": {"validation_split": 0.25}},
      "from_dataset_fn": {"source": "dataset_fn"},
      "built-in digits on 2 logical CPUs": {"options": {
          "dataset": "digits", "cpu_devices": 2}},
      "--dataset=tfrecord": {"options": {"dataset": "tfrecord",
                                         "data_dir": str(root / "written")}},
      "built-in synthetic": {"options": {"dataset": "synthetic"}},
      "built-in sequences": {"options": {"dataset": "sequences"}},
      "--mode=evaluate --watch": {"options": {
          "dataset": "digits", "mode": "evaluate", "watch": True}},
  }
  results = run_plans(cases, tmp_path, "control")
  started = [name for name in cases if results[name]]
  assert not started, f"planning started TensorFlow's runtime: {started}"
  # The check itself sees a started runtime, so this test can fail.
  assert results["control: a TensorFlow op"] is True
