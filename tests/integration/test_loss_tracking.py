"""The training loss a compiled model's own `train_step` logs, on 1..N replicas.

Keras's `compute_loss` returns the loss divided by the replica count; a step
in Keras's guide idiom logs it as is. The harness logs the global-batch loss
(`trainer.loss_tracking`) and warns when a step's logged loss is off.
"""

import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
import tensorflow as tf

from datasets import from_arrays, from_dataset_fn
from launch import fit
from tests.docs.examples import docs_example
from tests.processes import Supervisor, harness_env
from trainer.loss_tracking import unscaled_loss

WARNING = re.compile(r"warning: The training 'loss' logged")


def _descend(model, x, y, sample_weight=None):
  """Keras's guide: one gradient step on `compute_loss`; (loss, y_pred)."""
  with tf.GradientTape() as tape:
    y_pred = model(x, training=True)
    loss = model.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
  gradients = tape.gradient(loss, model.trainable_variables)
  model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
  return loss, y_pred


def _log(model, loss, y, y_pred):
  """Keras's guide: the "loss" metric gets the loss, the others (y, y_pred)."""
  for metric in model.metrics:
    if metric.name == "loss":
      metric.update_state(loss)
    else:
      metric.update_state(y, y_pred)


class IdiomModel(keras.Model):
  """Keras's guide, unchanged (it also serves a two-output model)."""

  def train_step(self, data):
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    loss, y_pred = _descend(self, x, y, sample_weight)
    _log(self, loss, y, y_pred)
    return {m.name: m.result() for m in self.metrics}

  def test_step(self, data):
    x, y = data
    y_pred = self(x, training=False)
    _log(self, self.compute_loss(y=y, y_pred=y_pred), y, y_pred)
    return {m.name: m.result() for m in self.metrics}


class HalvesModel(keras.Model):
  """Averages compute_loss over two halves of the batch (a derived value)."""

  use_unscaled_loss = False

  def train_step(self, data):
    x, y = data
    half = tf.shape(x)[0] // 2
    with tf.GradientTape() as tape:
      loss = (self.compute_loss(y=y[:half], y_pred=self(x[:half]))
              + self.compute_loss(y=y[half:], y_pred=self(x[half:]))) / 2
    gradients = tape.gradient(loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
    _log(self, unscaled_loss(loss) if self.use_unscaled_loss else loss, y,
         self(x))
    return {}


class FixedHalvesModel(HalvesModel):
  use_unscaled_loss = True


class ScaledIdiomModel(keras.Model):
  """Keras's guide with mixed precision's `scale_loss`."""

  def train_step(self, data):
    x, y = data
    with tf.GradientTape() as tape:
      y_pred = self(x, training=True)
      loss = self.compute_loss(y=y, y_pred=y_pred)
      scaled_loss = self.optimizer.scale_loss(loss)
    gradients = tape.gradient(scaled_loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
    _log(self, loss, y, y_pred)
    return {}


class ComputeMetricsModel(keras.Model):
  """`return self.compute_metrics(...)`: the "loss" metric is never updated."""

  def train_step(self, data):
    x, y = data
    _, y_pred = _descend(self, x, y)
    return self.compute_metrics(x, y, y_pred)


class OverrideModel(keras.Model):
  """Keras's `compute_loss` docstring: a Mean "loss" updated in an override
  returning a loss not divided by the replicas (gradients N times too big)."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.loss_tracker = keras.metrics.Mean(name="loss")

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                   training=True):
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        y, y_pred, from_logits=True)) + tf.add_n([0.0, *self.losses])
    self.loss_tracker.update_state(loss)
    return loss

  @property
  def metrics(self):
    return [self.loss_tracker]


class DataLossModel(keras.Model):
  """Logs, as "loss", the cross-entropy without the L2 term: another value."""

  def train_step(self, data):
    x, y = data
    _, y_pred = _descend(self, x, y)
    cross_entropy = keras.losses.sparse_categorical_crossentropy(
        y, y_pred, from_logits=True)
    _log(self, tf.reduce_mean(cross_entropy), y, y_pred)
    return {}


def _model_fn(model_class=IdiomModel, two_outputs=False, l2=0.0):
  def model_fn():
    inputs = keras.Input(shape=(64,))
    hidden = keras.layers.Dense(
        32, activation="relu",
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)(inputs)
    digit = keras.layers.Dense(10, name="digit", dtype="float32")(hidden)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True)
    if two_outputs:
      even = keras.layers.Dense(1, name="even")(hidden)
      model = model_class(inputs, {"digit": digit, "even": even})
      loss = {"digit": cross_entropy,
              "even": keras.losses.BinaryCrossentropy(from_logits=True)}
    else:
      model, loss = model_class(inputs, digit), cross_entropy
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"] * (
        not two_outputs))
    return model
  return model_fn


def _digit_arrays():
  digits = load_digits()
  return ((digits.images / 16.0).reshape(-1, 64).astype(np.float32),
          digits.target.astype(np.int32))


def _digits(two_outputs=False):
  x, y = _digit_arrays()
  if two_outputs:
    y = {"digit": y, "even": (y % 2 == 0).astype(np.float32)}
  split = lambda rows: tf.nest.map_structure(lambda a: a[rows], y)  # noqa: E731
  return (from_arrays(x[:1437], split(slice(None, 1437))),
          from_arrays(x[1437:], split(slice(1437, None))))


def _fit(tmp_path, model_fn, replicas, data=None, evaluate=False,
         **options):
  train, test = data or _digits()
  runs = len(list(tmp_path.iterdir()))
  return fit(model_fn, train, eval_data=test if evaluate else None,
             model_dir=str(tmp_path / f"run{runs}"),
             global_batch_size=32, train_steps=20, steps_per_loop=10,
             cpu_devices=replicas, deterministic=True, progress="none",
             **options)


def _losses(result, split="train"):
  return np.array([row[key] for row in result.history if row["split"] == split
                   for key in row if key.endswith("loss")])


@pytest.mark.slow
def test_keras_idiom_step_logs_the_global_batch_loss_on_1_2_4_replicas(
    tmp_path, capsys):
  logged = {replicas: _fit(tmp_path, _model_fn(), replicas, evaluate=True)
            for replicas in (1, 2, 4)}
  assert len(_losses(logged[1])) == 2 and _losses(logged[1])[0] > 2.0
  for replicas in (2, 4):  # Keras's fit: 2.30 on 1 replica, 1.15 on 2.
    for split in ("train", "eval"):
      assert np.allclose(_losses(logged[replicas], split),
                         _losses(logged[1], split), rtol=0, atol=1e-5)
  assert not WARNING.search(capsys.readouterr().err)


@pytest.mark.slow
def test_idiom_step_of_a_two_output_model_logs_what_keras_default_does(
    tmp_path, capsys):
  data = _digits(two_outputs=True)
  idiom = _fit(tmp_path, _model_fn(two_outputs=True), 2, data, evaluate=True)
  default = _fit(tmp_path, _model_fn(keras.Model, two_outputs=True), 2, data,
                 evaluate=True)
  for split in ("train", "eval"):  # loss, digit_loss, even_loss.
    assert len(_losses(idiom, split)) == 6 if split == "train" else 3
    assert np.allclose(_losses(idiom, split), _losses(default, split),
                       rtol=0, atol=1e-5)
  assert not WARNING.search(capsys.readouterr().err)


@pytest.mark.slow
def test_a_step_logging_a_wrong_loss_is_told_the_fix(tmp_path, capsys):
  _fit(tmp_path, _model_fn(HalvesModel), 2)
  _fit(tmp_path, _model_fn(ComputeMetricsModel), 2)
  _fit(tmp_path, _model_fn(OverrideModel), 2)
  lines = [line for line in capsys.readouterr().err.splitlines()
           if WARNING.search(line)]
  assert len(lines) == 3  # One sentence each, at the first loop only.
  match = re.search(r"logged \(([\d.]+)\) is the global-batch loss"
                    r" \(([\d.]+)\) divided by the 2 replicas .* log"
                    r" `trainer.loss_tracking.unscaled_loss\(loss\)`", lines[0])
  assert match and abs(2 * float(match[1]) - float(match[2])) < 2e-3
  assert re.search(r"logged is 0 while compute_loss\(\) gives 2\.\d+: your"
                   r" train_step never updates the 'loss' metric", lines[1])
  assert re.search(r"if it returns a loss not divided by the 2 replicas, the"
                   r" gradients are 2x the global batch's", lines[2])


@pytest.mark.slow
def test_idiom_step_with_sample_weights_logs_the_one_replica_loss(tmp_path,
                                                                capsys):
  x, y = _digit_arrays()
  weights = np.where(y % 2 == 0, 2.0, 0.5).astype(np.float32)

  def weighted(context):  # The user's pipeline: (x, y, sample_weight).
    return tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(
        context.get_per_replica_batch_size(32), drop_remainder=True)

  data = (from_dataset_fn(weighted, num_examples=len(y)), None)
  idiom = _fit(tmp_path, _model_fn(), 2, data)
  default = _fit(tmp_path, _model_fn(keras.Model), 1, data)
  assert np.allclose(_losses(idiom), _losses(default), rtol=0, atol=1e-5)
  assert not np.allclose(_losses(default), _losses(
      _fit(tmp_path, _model_fn(keras.Model), 1)), atol=1e-2)  # Weighs.
  assert not WARNING.search(capsys.readouterr().err)


@pytest.mark.parametrize("model_fn", [
    _model_fn(FixedHalvesModel), _model_fn(DataLossModel, l2=0.01),
    _model_fn(IdiomModel, l2=0.01)],
                         ids=["unscaled_loss", "another_quantity",
                              "idiom_with_l2"])
def test_right_or_other_losses_give_no_warning(tmp_path, capsys, model_fn):
  result = _fit(tmp_path, model_fn, 2)
  assert not WARNING.search(capsys.readouterr().err)
  assert _losses(result)[0] > 2.0  # The global batch's, not half of it.


@pytest.mark.slow
def test_mixed_float16_idiom_step_with_and_without_scale_loss(tmp_path,
                                                             capsys):
  mixed = dict(mixed_precision="mixed_float16")
  scaled = _fit(tmp_path, _model_fn(ScaledIdiomModel), 2, **mixed)
  default = _fit(tmp_path, _model_fn(keras.Model), 2, **mixed)
  assert np.allclose(_losses(scaled), _losses(default), rtol=0, atol=1e-5)
  assert _losses(scaled)[0] > 2.0
  assert "warning:" not in capsys.readouterr().err
  _fit(tmp_path, _model_fn(), 2, **mixed)  # The guide has no scale_loss.
  assert re.search(r"warning: Your train_step computes gradients of"
                   r" compute_loss\(\)'s result without"
                   r" self.optimizer.scale_loss\(\)", capsys.readouterr().err)


def _train_losses(model_dir) -> list[float]:
  with open(model_dir / "metrics.jsonl", encoding="utf-8") as stream:
    rows = [json.loads(line) for line in stream]
  return [row["loss"] for row in rows if row["split"] == "train"]


@pytest.mark.slow
def test_the_docs_script_on_two_workers_logs_the_one_replica_loss(
    tmp_path):
  script = tmp_path / "my_train.py"
  script.write_text(docs_example("docs/multi-worker-and-clusters.md",
                                 "script-on-workers"))
  steps = "--train_steps=40"
  one = subprocess.run(
      [sys.executable, str(script), f"--model_dir={tmp_path / 'one'}", steps,
       "--cpu_devices=1"], env=harness_env(), cwd=tmp_path,
      capture_output=True, text=True, timeout=300, check=False)
  assert one.returncode == 0, one.stderr[-3000:]
  two = Supervisor(["--workers=2", str(script),
                    f"--model_dir={tmp_path / 'two'}", steps],
                   tmp_path / "supervisor.out")
  assert two.wait(timeout=300) == 0, two.output[-3000:]
  losses = _train_losses(tmp_path / "one")
  assert len(losses) == 1 and losses[0] > 1.0  # Keras's fit: half on 2.
  assert np.allclose(_train_losses(tmp_path / "two"), losses, rtol=0,
                     atol=1e-5)
  assert "warning:" not in one.stderr + two.output
