"""The user's own data, end to end: CSV, image directories, TFRecords.

Each kind trains to a useful accuracy, from Python (`launch.fit`) and, for
CSV, from the command line; resume is bitwise exact for every kind.
"""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import from_arrays, from_csv, from_image_directory
from datasets import from_tfrecords
from launch import fit
from tests import checkpoints
from tests.processes import launch_in_this_process


def _split(count: int, test: int):
  order = np.random.default_rng(0).permutation(count)
  return order[:-test], order[-test:]


@pytest.fixture(scope="module")
def breast_cancer_csv(tmp_path_factory):
  """scikit-learn's breast-cancer data as CSV files with a header."""
  from sklearn.datasets import load_breast_cancer
  data = load_breast_cancer()
  directory = tmp_path_factory.mktemp("csv")
  train, test = _split(len(data.target), 114)
  for name, rows in (("train", train), ("test", test)):
    with open(directory / f"{name}.csv", "w", newline="") as stream:
      writer = csv.writer(stream)
      writer.writerow([*data.feature_names, "target"])
      for row in rows:
        writer.writerow([*data.data[row], data.target[row]])
  return directory


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory):
  """The 8x8 digits as grayscale PNGs in class subfolders."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  directory = tmp_path_factory.mktemp("pngs")
  train, test = _split(len(digits.target), 360)
  for split, rows in (("train", train), ("test", test)):
    for row in rows:
      folder = directory / split / f"digit_{digits.target[row]}"
      folder.mkdir(parents=True, exist_ok=True)
      pixels = (digits.images[row] * 255 / 16).round().astype(np.uint8)
      png = tf.io.encode_png(pixels[..., np.newaxis]).numpy()
      (folder / f"{row:04d}.png").write_bytes(png)
  return directory


@pytest.fixture(scope="module")
def halves_tfrecords(tmp_path_factory):
  """Digits as TFRecords with two inputs and two labels (a user schema)."""
  from sklearn.datasets import load_digits
  digits = load_digits()
  flat = (digits.images / 16.0).reshape(-1, 64).astype(np.float32)
  directory = tmp_path_factory.mktemp("tfrecords")
  train, test = _split(len(digits.target), 360)
  for split, rows in (("train", train), ("test", test)):
    for shard in range(2):
      path = directory / f"{split}-{shard}.tfrecord"
      with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows[shard::2]:
          feature = {
              "top": tf.train.Feature(float_list=tf.train.FloatList(
                  value=flat[row, :32])),
              "bottom": tf.train.Feature(float_list=tf.train.FloatList(
                  value=flat[row, 32:])),
              "digit": tf.train.Feature(int64_list=tf.train.Int64List(
                  value=[digits.target[row]])),
              "large": tf.train.Feature(int64_list=tf.train.Int64List(
                  value=[int(digits.target[row] >= 5)])),
          }
          writer.write(tf.train.Example(features=tf.train.Features(
              feature=feature)).SerializeToString())
  return directory


def _tfrecords(directory, split):
  return from_tfrecords(
      str(directory / f"{split}-*.tfrecord"),
      features={"top": tf.io.FixedLenFeature([32], tf.float32),
                "bottom": tf.io.FixedLenFeature([32], tf.float32)},
      label=["digit", "large"])


def _two_head_model():
  top, bottom = keras.Input((32,), name="top"), keras.Input((32,), name="bottom")
  hidden = keras.layers.Dense(64, activation="relu")(
      keras.layers.Concatenate()([top, bottom]))
  model = keras.Model({"top": top, "bottom": bottom}, {
      "digit": keras.layers.Dense(10, name="digit")(hidden),
      "large": keras.layers.Dense(1, name="large")(hidden)})
  model.compile(
      optimizer=keras.optimizers.Adam(3e-3),
      loss={"digit": keras.losses.SparseCategoricalCrossentropy(
          from_logits=True),
            "large": keras.losses.BinaryCrossentropy(from_logits=True)},
      loss_weights={"digit": 1.0, "large": 0.5},
      metrics={"digit": ["accuracy"],
               "large": [keras.metrics.BinaryAccuracy(threshold=0.0)]})
  return model


def _final_eval(model_dir) -> dict:
  rows = [json.loads(line) for line in
          (model_dir / "metrics.jsonl").read_text().splitlines()]
  return [row for row in rows if row["split"] == "eval"][-1]


def test_breast_cancer_csv_from_the_command_line(tmp_path, breast_cancer_csv):
  code, errors = launch_in_this_process([
      f"--train_data={breast_cancer_csv / 'train.csv'}",
      f"--eval_data={breast_cancer_csv / 'test.csv'}", "--label_column=target",
      "--loss=binary_crossentropy", "--train_steps=300",
      "--global_batch_size=32", f"--model_dir={tmp_path}", "--progress=none"])
  assert (code, errors) == (0, [])
  final = _final_eval(tmp_path)
  assert final["examples"] == 114 and final["accuracy"] >= 0.95


def test_breast_cancer_csv_from_python(tmp_path, breast_cancer_csv):
  train = from_csv(breast_cancer_csv / "train.csv", label_column="target")
  assert "not rescaled" in train.description or "float" in train.description
  result = fit(None, train, eval_data=from_csv(
      breast_cancer_csv / "test.csv", label_column="target"), model="mlp",
               loss="binary_crossentropy", model_dir=str(tmp_path),
               global_batch_size=32, train_steps=300, cpu_devices=2,
               progress="none")
  assert result.logs["accuracy"] >= 0.95


@pytest.mark.slow
def test_png_digits_train_the_built_in_cnn(tmp_path, digit_pngs):
  options = dict(image_size=(8, 8), color_mode="grayscale")
  train = from_image_directory(digit_pngs / "train", **options)
  assert train.num_examples == 1437 and train.num_classes == 10
  result = fit(None, train, eval_data=from_image_directory(
      digit_pngs / "test", **options), model="cnn", model_dir=str(tmp_path),
               global_batch_size=64, train_steps=500, cpu_devices=2,
               progress="none")
  assert result.logs["examples"] == 360
  assert result.logs["accuracy"] >= 0.95


@pytest.mark.slow
def test_tfrecords_with_two_inputs_and_two_outputs(tmp_path,
                                                  halves_tfrecords):
  result = fit(_two_head_model, _tfrecords(halves_tfrecords, "train"),
               eval_data=_tfrecords(halves_tfrecords, "test"),
               model_dir=str(tmp_path), global_batch_size=64,
               train_steps=300, cpu_devices=2, progress="none")
  assert result.logs["examples"] == 360
  assert result.logs["digit_accuracy"] > 0.9
  assert result.logs["large_binary_accuracy"] > 0.9


def _resume_is_exact(tmp_path, model_fn, make_sources, **options):
  """40 steps straight == 20 steps, then a rerun to 40, bitwise."""
  common = dict(global_batch_size=32, deterministic=True, seed=5,
                steps_per_loop=10, cpu_devices=2, progress="none", **options)
  fit(model_fn, *make_sources(), model_dir=str(tmp_path / "straight"),
      train_steps=40, **common)
  fit(model_fn, *make_sources(), model_dir=str(tmp_path / "resumed"),
      train_steps=20, **common)
  resumed = fit(model_fn, *make_sources(), model_dir=str(tmp_path / "resumed"),
                train_steps=40, **common)
  assert resumed.step == 40
  assert checkpoints.max_checkpoint_difference(
      tmp_path / "straight" / "checkpoints",
      tmp_path / "resumed" / "checkpoints") == 0.0


@pytest.mark.slow
def test_resume_is_exact_for_arrays(tmp_path):
  from sklearn.datasets import load_digits
  digits = load_digits()
  _resume_is_exact(tmp_path, None, lambda: (from_arrays(
      digits.images[..., None].astype(np.uint8), digits.target),),
                   model="mlp")


@pytest.mark.slow
def test_resume_is_exact_for_csv(tmp_path, breast_cancer_csv):
  _resume_is_exact(tmp_path, None, lambda: (from_csv(
      breast_cancer_csv / "train.csv", label_column="target"),), model="mlp",
                   loss="binary_crossentropy")


@pytest.mark.slow
def test_resume_is_exact_for_image_directories(tmp_path, digit_pngs):
  _resume_is_exact(tmp_path, None, lambda: (from_image_directory(
      digit_pngs / "train", image_size=(8, 8), color_mode="grayscale"),),
                   model="cnn")  # With dropout: its RNG state resumes too.


@pytest.mark.slow
def test_resume_is_exact_for_tfrecords(tmp_path, halves_tfrecords):
  _resume_is_exact(tmp_path, _two_head_model,
                   lambda: (_tfrecords(halves_tfrecords, "train"),))


USER_MODULE = '''
import keras
from sklearn.datasets import load_digits
from datasets import from_arrays


def model_fn():
  model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(32, activation="relu"),
                            keras.layers.Dense(10, activation="softmax")])
  model.compile(optimizer=keras.optimizers.Adam(3e-3),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
  return model


def digits():
  data = load_digits()
  images = (data.images / 16.0)[..., None].astype("float32")
  return (from_arrays(images[:1437], data.target[:1437]),
          from_arrays(images[1437:], data.target[1437:]))
'''


@pytest.mark.slow
def test_command_line_takes_a_model_fn_and_a_dataset_function(
    tmp_path, monkeypatch):
  (tmp_path / "user_code.py").write_text(USER_MODULE)
  monkeypatch.syspath_prepend(str(tmp_path))
  code, errors = launch_in_this_process([
      "--model=user_code:model_fn", "--dataset=user_code:digits",
      "--train_steps=300", "--global_batch_size=32", "--cpu_devices=2",
      f"--model_dir={tmp_path / 'run'}", "--progress=none"])
  assert (code, errors) == (0, [])
  final = _final_eval(tmp_path / "run")
  assert final["examples"] == 360 and final["accuracy"] > 0.85
  code, errors = launch_in_this_process([
      "--model=user_code:model_fn", "--dataset=user_code:digits",
      "--optimizer=sgd", f"--model_dir={tmp_path / 'other'}"])
  assert code == 2
  assert errors == ["error: --optimizer does not apply to a compiled model:"
                    " compile() chose its optimizer, loss and metrics (set it"
                    " there, e.g. keras.optimizers.Adam(global_clipnorm=...)"
                    " for clipping)."]
