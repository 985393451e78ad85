"""`launch.fit` with the user's own compiled Keras models, in this process."""

import csv
import json
import re

import keras
import numpy as np
import pytest

from datasets import from_arrays
from launch import fit
from launch.errors import ConfigError
from tests.training import max_difference


def _digits(one_hot: bool = False):
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  features = (digits.images / 16.0).astype(np.float32).reshape(-1, 64)
  labels = digits.target
  if one_hot:
    labels = keras.utils.to_categorical(labels, 10)
  return (from_arrays(features[:1437], labels[:1437]),
          from_arrays(features[1437:], labels[1437:]))


def _notes_model():
  """The notes' MNIST model: softmax output, categorical cross-entropy."""
  model = keras.Sequential([
      keras.Input(shape=(64,)),
      keras.layers.Dense(64, activation="relu"),
      keras.layers.Dense(10, activation="softmax")])
  model.compile(optimizer="adam", loss="categorical_crossentropy",
                metrics=["accuracy"])
  return model


class IdiomModel(keras.Model):
  """A train_step written in Keras's idiom (Keras's own guide)."""

  def train_step(self, data):
    x, y = data
    import tensorflow as tf
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      loss = self.compute_loss(y=y, y_pred=y_pred)
    gradients = tape.gradient(loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
    for metric in self.metrics:
      if metric.name == "loss":
        metric.update_state(loss)
      else:
        metric.update_state(y, y_pred)
    return {m.name: m.result() for m in self.metrics}


def _idiom_model():
  inputs = keras.Input(shape=(64,))
  hidden = keras.layers.Dense(32, activation="relu")(inputs)
  model = IdiomModel(inputs, keras.layers.Dense(10)(hidden))
  model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), metrics=["accuracy"])
  return model


def test_the_notes_compiled_model_trains_and_predicts(tmp_path):
  train, test = _digits(one_hot=True)
  result = fit(_notes_model, train, eval_data=test, model_dir=str(tmp_path),
               global_batch_size=32, epochs=2, cpu_devices=2,
               progress="none")
  assert result.logs["accuracy"] > 0.7  # Keras's own fit: 0.756.
  assert result.logs["examples"] == 360
  assert result.step == 2 * 45  # ceil(1437 / 32) steps per epoch.
  probabilities = result.model.predict(np.zeros((3, 64), np.float32),
                                       verbose=0)
  assert probabilities.shape == (3, 10)
  assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
  splits = [row["split"] for row in result.history]
  assert splits.count("eval") == 2 and "train" in splits  # One per epoch.
  config = json.loads((tmp_path / "config.json").read_text())
  assert config["model_fingerprint"]["optimizer"] == "Adam"


@pytest.mark.slow
def test_keras_idiom_train_step_is_replica_equivalent(tmp_path):
  train, test = _digits()
  weights = {}
  for replicas in (1, 2, 4):
    result = fit(_idiom_model, train, eval_data=test,
                 model_dir=str(tmp_path / str(replicas)),
                 global_batch_size=32, train_steps=100, steps_per_loop=25,
                 cpu_devices=replicas, deterministic=True, seed=3,
                 progress="none")
    weights[replicas] = [w.numpy() for w in result.model.weights]
    assert result.logs["examples"] == 360
  assert max_difference(weights[1], weights[2]) <= 1e-5
  assert max_difference(weights[1], weights[4]) <= 1e-5


@pytest.mark.slow
def test_exact_eval_of_a_compiled_model_on_an_uneven_split(tmp_path):
  """360 examples over 4 replicas x 32: Keras's evaluate on one device."""
  train, test = _digits(one_hot=True)
  result = fit(_notes_model, train, eval_data=test, model_dir=str(tmp_path),
               global_batch_size=128, train_steps=30, cpu_devices=4,
               progress="none")
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  x = (digits.images / 16.0).astype(np.float32).reshape(-1, 64)[1437:]
  y = keras.utils.to_categorical(digits.target[1437:], 10)
  probabilities = result.model.predict(x, verbose=0)
  expected_loss = float(np.mean(-np.log(np.maximum(
      (probabilities * y).sum(axis=1), 1e-7))))
  expected_accuracy = float(np.mean(probabilities.argmax(1) == y.argmax(1)))
  assert result.logs["accuracy"] == pytest.approx(expected_accuracy, abs=1e-6)
  assert result.logs["loss"] == pytest.approx(expected_loss, rel=1e-4)


class _Recorder(keras.callbacks.Callback):

  def __init__(self, stop_at_epoch=None):
    super().__init__()
    self.events, self.stop_at_epoch = [], stop_at_epoch

  def on_train_begin(self, logs=None):
    self.events.append(("train_begin", self.model is not None))

  def on_epoch_end(self, epoch, logs=None):
    self.events.append(("epoch_end", epoch, dict(logs)))
    if epoch == self.stop_at_epoch:
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    self.events.append(("train_end",))


@pytest.mark.slow
def test_keras_callbacks_see_val_metrics_and_can_stop(tmp_path):
  train, test = _digits(one_hot=True)
  recorder = _Recorder(stop_at_epoch=1)
  csv_path = tmp_path / "log.csv"
  result = fit(_notes_model, train, eval_data=test,
               model_dir=str(tmp_path / "run"), global_batch_size=64,
               epochs=5, cpu_devices=2, progress="none",
               callbacks=[recorder, keras.callbacks.CSVLogger(str(csv_path)),
                          keras.callbacks.EarlyStopping(patience=10)])
  ends = [event for event in recorder.events if event[0] == "epoch_end"]
  assert [event[1] for event in ends] == [0, 1]
  assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(ends[0][2])
  assert recorder.events[0] == ("train_begin", True)
  assert recorder.events[-1] == ("train_end",)
  assert result.step == 2 * 23  # Stopped after the second epoch.
  rows = list(csv.DictReader(csv_path.open()))
  assert [row["epoch"] for row in rows] == ["0", "1"]
  assert "val_accuracy" in rows[0]


@pytest.mark.slow
def test_two_fits_in_one_process_are_independent(tmp_path):
  train, test = _digits()
  first = fit(None, train, eval_data=test, model="mlp",
              model_dir=str(tmp_path / "a"), global_batch_size=32,
              train_steps=40, cpu_devices=2, optimizer="sgd",
              learning_rate=0.05, progress="none")
  second = fit(_idiom_model, train, eval_data=test,
               model_dir=str(tmp_path / "b"), global_batch_size=32,
               train_steps=40, cpu_devices=2, progress="none")
  assert first.step == second.step == 40
  config = json.loads((tmp_path / "b" / "config.json").read_text())
  assert config["train"]["optimizer"] == "adam"  # Not the first call's sgd.
  assert config["train"]["learning_rate"] == 3e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(not_an_option=1), "unknown option 'not_an_option'"),
    (dict(learning_rate="fast"), "learning_rate='fast' must be a number"),
    (dict(cpu_devices=8), "cpu_devices=8 cannot take effect"),
    (dict(dropout=0.5), "dropout shapes the built-in networks only"),
    (dict(optimizer="sgd"), "optimizer does not apply to a compiled model"),
    (dict(seed=None), "seed=None is not allowed"),
])
def test_bad_input_is_one_sentence(tmp_path, kwargs, message):
  train, test = _digits()
  with pytest.raises(ConfigError) as raised:
    fit(_idiom_model, train, eval_data=test, model_dir=str(tmp_path / "m"),
        global_batch_size=32, train_steps=10, progress="none", **kwargs)
  assert message in str(raised.value)
  assert "--" not in str(raised.value).replace("--help", "")
  assert len(str(raised.value).splitlines()) == 1
  assert not (tmp_path / "m").exists()


def test_a_model_built_outside_model_fn_is_refused(tmp_path):
  train, _ = _digits()
  prebuilt = _idiom_model()
  with pytest.raises(ConfigError, match="created outside the distribution"):
    fit(lambda: prebuilt, train, model_dir=str(tmp_path / "m"),
        global_batch_size=32, train_steps=10, cpu_devices=2, progress="none")
  with pytest.raises(ConfigError, match="model_fn is a model, not the"):
    fit(prebuilt, train, model_dir=str(tmp_path / "m"),
        global_batch_size=32, train_steps=10, progress="none")
  with pytest.raises(ConfigError, match="returned int, not a keras.Model"):
    fit(lambda: 3, train, model_dir=str(tmp_path / "m"),
        global_batch_size=32, train_steps=10, progress="none")


def test_a_finished_run_says_so_and_refuses_new_settings(tmp_path, capsys):
  train, test = _digits()
  options = dict(eval_data=test, model_dir=str(tmp_path),
                 global_batch_size=32, train_steps=20, progress="none")
  fit(None, train, model="mlp", **options)
  again = fit(None, train, model="mlp", **options)
  assert again.step == 20
  # On stderr, as a person sees it: one line, not absl's format.
  assert re.search(r"^(\S+ \S+ )?warning: .* is complete at step 20",
                   capsys.readouterr().err, re.MULTILINE)
  with pytest.raises(ConfigError, match="learning_rate=0.003 -> 0.01"):
    fit(None, train, model="mlp", learning_rate=0.01, **options)
  with pytest.raises(ConfigError, match="model='mlp' -> 'tests.integration"):
    fit(_idiom_model, train, **options)


@pytest.mark.slow
def test_keras_reduce_lr_lambda_and_terminate_on_nan(tmp_path):
  train, test = _digits(one_hot=True)
  epochs_seen = []
  result = fit(_notes_model, train, eval_data=test, model_dir=str(tmp_path),
               global_batch_size=64, epochs=4, cpu_devices=2, progress="none",
               callbacks=[
                   keras.callbacks.ReduceLROnPlateau(
                       monitor="val_loss", mode="max", patience=0,
                       factor=0.5),  # "max" on a loss: reduces every epoch.
                   keras.callbacks.TerminateOnNaN(),
                   keras.callbacks.LambdaCallback(
                       on_epoch_end=lambda epoch, logs: epochs_seen.append(
                           (epoch, round(logs["val_accuracy"], 6))))])
  rates = sorted({row["learning_rate"] for row in result.history
                  if row["split"] == "train"}, reverse=True)
  assert rates[0] == pytest.approx(1e-3)
  assert rates == pytest.approx([1e-3, 5e-4, 2.5e-4])  # After epochs 1, 2.
  evals = [round(row["accuracy"], 6) for row in result.history
           if row["split"] == "eval"]
  assert epochs_seen == list(enumerate(evals))


def test_a_per_class_metric_becomes_one_scalar_per_class(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(128, 4)).astype("float32")
  y = keras.utils.to_categorical((x[:, 0] > 0).astype("int64"), 2)

  def model_fn():
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy",
                  metrics=[keras.metrics.F1Score(average=None)])
    return model

  result = fit(model_fn, from_arrays(x, y), eval_data=from_arrays(x, y),
               model_dir=str(tmp_path), global_batch_size=32, epochs=2,
               progress="none")
  assert set(result.logs) == {"loss", "f1_score/0", "f1_score/1",
                              "examples"}
  with open(tmp_path / "metrics.csv", newline="", encoding="utf-8") as stream:
    header = next(csv.reader(stream))
  assert "val_f1_score/1" in header


def _counted_dataset_fn(path, calls: list):
  """A user's dataset function reading their .npz file; counts its calls."""
  def read_digits(input_context):
    import tensorflow as tf
    calls.append(input_context.input_pipeline_id)
    with np.load(path) as data:
      features, labels = data["x"], data["y"]
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).shard(
        input_context.num_input_pipelines, input_context.input_pipeline_id)
    return dataset.batch(input_context.get_per_replica_batch_size(32),
                         drop_remainder=True)
  return read_digits


@pytest.mark.parametrize("cpu_devices", [1, 2])
def test_the_training_pipeline_is_built_once(tmp_path, cpu_devices):
  """A model_fn's model is built on a batch's spec: the same pipeline then
  trains (it was built twice, reading the user's files twice)."""
  from sklearn import datasets as sklearn_datasets
  from datasets import from_dataset_fn
  digits = sklearn_datasets.load_digits()
  path = tmp_path / "digits.npz"
  np.savez(path, x=(digits.images / 16.0).astype(np.float32).reshape(-1, 64),
           y=digits.target.astype(np.int32))
  train_calls, eval_calls = [], []
  train = from_dataset_fn(_counted_dataset_fn(path, train_calls),
                          num_examples=1797, input_shape=(64,),
                          num_classes=10)
  held_out = from_dataset_fn(_counted_dataset_fn(path, eval_calls),
                             num_examples=320, input_shape=(64,),
                             num_classes=10)
  run = dict(model_dir=str(tmp_path / "run"), global_batch_size=32,
             steps_per_loop=5, cpu_devices=cpu_devices, progress="none")
  first = fit(_idiom_model, train, eval_data=held_out, train_steps=10, **run)
  assert first.step == 10 and first.logs["examples"] > 0
  assert train_calls == [0]  # One input pipeline, built once.
  assert eval_calls == [0]  # Checked against the model, then evaluated.
  del train_calls[:]
  resumed = fit(_idiom_model, train, eval_data=held_out, train_steps=20,
                **run)
  assert resumed.step == 20
  assert train_calls == [0]  # Built for the restored step, once.
