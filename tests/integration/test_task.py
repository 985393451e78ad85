"""The task is never guessed silently; class names reach the predictions.

Regression CSVs (float and whole-number targets), an iris CSV with text
labels and an image folder, each trained and predicted as a user would.
"""

import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets import DataError, files, from_csv
from launch import fit
from launch.errors import ConfigError
from tests.integration.test_predict import run_predict
from tests.processes import launch_in_this_process, run_launch


def train(args):
  """`python -m launch ARGS`: (exit code, its stdout and stderr)."""
  result = run_launch([*args, "--progress=none"])
  return result.returncode, result.stdout + result.stderr


def write_csv(path, header, rows):
  with open(path, "w", newline="", encoding="utf-8") as stream:
    writer = csv.writer(stream)
    writer.writerow(header)
    writer.writerows(rows)
  return str(path)


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory):
  """sklearn's diabetes: whole-number targets (151.0, 75.0, ...)."""
  from sklearn.datasets import load_diabetes
  data = load_diabetes()
  return write_csv(tmp_path_factory.mktemp("diabetes") / "diabetes.csv",
                   [*data.feature_names, "progression"],
                   [[*x, f"{y:.1f}"] for x, y in zip(data.data, data.target)])


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory):
  """sklearn's iris with its species as text, sorted by class."""
  from sklearn.datasets import load_iris
  data = load_iris()
  return write_csv(tmp_path_factory.mktemp("iris") / "iris.csv",
                   ["sepal_length", "sepal_width", "petal_length",
                    "petal_width", "species"],
                   [[*x, data.target_names[y]]
                    for x, y in zip(data.data, data.target)])


@pytest.mark.slow
def test_float_targets_train_a_regression_and_export_says_so(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(256, 3))
  y = x @ [1.5, -2.0, 0.5] + 3.0 + rng.normal(size=256) * 0.1
  path = write_csv(tmp_path / "house.csv", ["rooms", "area", "age", "price"],
                   [[*row, f"{value:.3f}"] for row, value in zip(x, y)])
  code, output = train([
      f"--train_data={path}", "--label_column=price", "--validation_split=0.25",
      f"--model_dir={tmp_path / 'run'}", "--train_steps=150",
      "--global_batch_size=32"])
  assert code == 0, output[-2000:]
  assert "Task: regression (loss mse, metrics mae, mse)." in output
  assert "label column 'price' (regression targets)" in output
  metadata = json.loads((tmp_path / "run/export/metadata.json").read_text())
  assert metadata["task"] == "regression" and metadata["outputs"] == "values"
  assert "num_classes" not in metadata and "from_logits" not in metadata
  assert metadata["input_format"]["feature_names"] == ["rooms", "area", "age"]
  final = json.loads((tmp_path / "run/metrics.jsonl").read_text()
                     .splitlines()[-1])
  assert final["mae"] < 0.5, final  # Targets spread about 2.6.
  # Predict from a CSV with its header, columns in another order, the
  # label column present: values, as the trained network gives them.
  rows = [[f"{v:.3f}" for v in (row[2], value, row[0], row[1])]
          for row, value in zip(x[:5], y[:5])]
  given = write_csv(tmp_path / "new.csv", ["age", "price", "rooms", "area"],
                    rows)
  predicted = run_predict([f"--export_dir={tmp_path / 'run/export'}",
                           f"--input={given}",
                           f"--output={tmp_path / 'p.csv'}"])
  assert predicted.returncode == 0, predicted.stderr[-2000:]
  values = np.loadtxt(tmp_path / "p.csv", delimiter=",")
  np.testing.assert_allclose(values, y[:5], atol=1.0)
  refused = run_predict([f"--export_dir={tmp_path / 'run/export'}",
                         f"--input={given}", "--classes",
                         f"--output={tmp_path / 'q.csv'}"])
  assert refused.returncode == 2 and "is a regression" in refused.stderr
  short = write_csv(tmp_path / "short.csv", ["rooms", "age"], [[1, 2]])
  with pytest.raises(DataError, match="short.csv has no column 'area', a"
                     " feature the model was trained on"):
    files.load_features(short, (3,), ["rooms", "area", "age"])


@pytest.mark.slow
def test_whole_number_targets_ask_then_match_plain_keras(tmp_path,
                                                         diabetes_csv):
  code, errors = launch_in_this_process([
      f"--train_data={diabetes_csv}", "--label_column=progression",
      f"--model_dir={tmp_path / 'asked'}", "--train_steps=10"])
  assert code == 2
  assert errors == [
      "error: column 'progression' holds 214 distinct whole numbers in 442"
      " rows, so it may be classes or quantities: give --task=regression"
      " or --task=classification."]
  assert not (tmp_path / "asked").exists()
  # A compiled model through fit, as Keras would train it (full batch).
  def model_fn():
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(5.0), loss="mse",
                  metrics=["mae"])
    return model
  source = from_csv(diabetes_csv, label_column="progression",
                    task="regression", shuffle=False)
  result = fit(model_fn, source, eval_data=source, train_steps=200,
               global_batch_size=442, model_dir=str(tmp_path / "fit"),
               steps_per_loop=100, seed=1)
  keras.utils.set_random_seed(1)
  plain = model_fn()
  plain.fit(source.data.features, source.data.labels, batch_size=442,
            epochs=200, shuffle=False, verbose=0)
  mse, mae = plain.evaluate(source.data.features, source.data.labels,
                            verbose=0)
  assert result.logs["loss"] == pytest.approx(mse, rel=1e-3)
  assert result.logs["mae"] == pytest.approx(mae, rel=1e-3)
  assert mae < 50  # Predicting the mean: 64. A model, not a guess.
  metadata = json.loads((tmp_path / "fit/export/metadata.json").read_text())
  assert metadata["task"] == "regression" and "num_classes" not in metadata
  with pytest.raises(ConfigError, match="metrics=accuracy is a classification"
                     " metric, but the task is regression"):
    fit(None, source, model_dir=str(tmp_path / "x"), global_batch_size=32,
        metrics=["accuracy"])


@pytest.mark.slow
def test_iris_text_labels_train_and_predict_names(tmp_path, iris_csv):
  code, output = train([
      f"--train_data={iris_csv}", "--label_column=species",
      f"--model_dir={tmp_path / 'run'}", "--train_steps=200",
      "--global_batch_size=30"])
  assert code == 0, output[-2000:]
  assert ("label column 'species' (3 classes: setosa, versicolor,"
          " virginica)") in output
  metadata = json.loads((tmp_path / "run/export/metadata.json").read_text())
  assert metadata["class_names"] == ["setosa", "versicolor", "virginica"]
  predicted = run_predict([f"--export_dir={tmp_path / 'run/export'}",
                           f"--input={iris_csv}", "--classes",
                           f"--output={tmp_path / 'p.csv'}"])
  assert predicted.returncode == 0, predicted.stderr[-2000:]
  names = (tmp_path / "p.classes.csv").read_text().split()
  with open(iris_csv, encoding="utf-8") as stream:
    truth = [row["species"] for row in csv.DictReader(stream)]
  assert len(names) == 150 and set(names) == set(truth)
  assert np.mean(np.array(names) == np.array(truth)) > 0.9


@pytest.mark.slow
def test_image_folder_predicts_files_and_folders_with_names(tmp_path):
  for name, value in (("dark", 30), ("light", 220)):
    (tmp_path / "train" / name).mkdir(parents=True)
    for index in range(8):
      pixels = tf.fill((12, 10, 3), tf.constant(value + index, tf.uint8))
      (tmp_path / "train" / name / f"{index}.png").write_bytes(
          tf.io.encode_png(pixels).numpy())
  code, output = train([
      f"--train_data={tmp_path / 'train'}", "--image_size=8,8",
      f"--model_dir={tmp_path / 'run'}", "--train_steps=60",
      "--global_batch_size=8"])
  assert code == 0, output[-2000:]
  assert "2 classes (dark, light)" in output
  export_dir = tmp_path / "run/export"
  metadata = json.loads((export_dir / "metadata.json").read_text())
  assert metadata["class_names"] == ["dark", "light"]
  assert metadata["input_format"] == {"kind": "images", "image_size": [8, 8],
                                      "channels": 3}
  new = tmp_path / "new"
  new.mkdir()
  for name, value in (("a.jpg", 25), ("b.png", 230)):
    pixels = tf.fill((20, 16, 3), tf.constant(value, tf.uint8))
    encode = tf.io.encode_jpeg if name.endswith("jpg") else tf.io.encode_png
    (new / name).write_bytes(encode(pixels).numpy())
  folder = run_predict([f"--export_dir={export_dir}", f"--input={new}",
                        "--classes", f"--output={tmp_path / 'p.npy'}"])
  assert folder.returncode == 0, folder.stderr[-2000:]
  assert np.load(tmp_path / "p.classes.npy").tolist() == ["dark", "light"]
  assert (tmp_path / "p.files.txt").read_text().split() == [
      str(new / "a.jpg"), str(new / "b.png")]
  one = run_predict([f"--export_dir={export_dir}", f"--input={new / 'b.png'}",
                     "--classes", f"--output={tmp_path / 'q.csv'}"])
  assert one.returncode == 0, one.stderr[-2000:]
  assert (tmp_path / "q.classes.csv").read_text() == "light\n"
  probabilities = np.loadtxt(tmp_path / "q.csv", delimiter=",")
  np.testing.assert_allclose(probabilities, np.load(tmp_path / "p.npy")[1],
                             atol=1e-6)
  (new / "bad.png").write_text("not a png")
  with pytest.raises(DataError, match="bad.png is not a readable image"):
    files.load_images(files.list_images(str(new)), image_size=(8, 8),
                      channels=3)


@pytest.mark.parametrize("labels,options,message", [
    ([0.5, 1.5] * 8, {"loss": "sparse_categorical_crossentropy"},
     "loss=sparse_categorical_crossentropy is a classification loss, but the"
     " labels of arrays are regression targets; use loss=mse"),
    ([0, 1] * 8, {"metrics": ["mae"]},
     "metrics=mae is a regression metric, but the labels of arrays are"
     " classes"),
    ([0, 1] * 8, {"task": "classification", "loss": "mse"},
     "loss=mse is a regression loss, but task=classification"),
    ([0, 1] * 8, {"task": "regression"},
     "task=regression, but arrays holds classification labels; read the"
     " data with task=regression"),
    ([0, 1] * 8, {"monitor": "mae", "eval_every": 5},
     "monitor=mae is not an eval metric of this run (loss, examples,"
     " accuracy)"),
])
def test_options_against_the_data_are_one_sentence(tmp_path, labels,
                                                   options, message):
  from datasets import from_arrays
  from launch import api
  source = from_arrays(np.zeros((16, 2), np.float32), np.array(labels))
  with pytest.raises(ConfigError) as raised:
    api.plan(None, source, options=dict(
        options, model_dir=str(tmp_path / "run"), global_batch_size=8))
  assert message in str(raised.value)
  assert not (tmp_path / "run").exists()


def test_regression_defaults_with_mse_alone_and_mae(tmp_path):
  from datasets import from_arrays
  from launch import api
  source = from_arrays(np.zeros((16, 2), np.float32), np.arange(16) % 7)
  planned = api.plan(None, source, options=dict(
      loss="mse", model_dir=str(tmp_path / "run"), global_batch_size=8))
  assert planned.config.task == "regression"
  assert planned.config.train.metrics == ("mae", "mse")
  floats = from_arrays(np.zeros((16, 2), np.float32), np.linspace(0, 1, 16))
  planned = api.plan(None, floats, options=dict(
      metrics=["mae"], monitor="mae", eval_every=5, validation_split=0.25,
      model_dir=str(tmp_path / "run"), global_batch_size=8))
  assert planned.config.train.loss == "mse"
  assert planned.config.train.metrics == ("mae",)
