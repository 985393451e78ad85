"""N replicas train and evaluate like one device (MirroredStrategy, 1/2/4)."""

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics
import tensorflow as tf

from datasets import catalogue
from datasets import from_arrays
from tests import training

TOLERANCE = 1e-5


@pytest.mark.parametrize("optimizer,learning_rate", [
    ("sgd", 0.05),
    pytest.param("adam", 1e-3, marks=pytest.mark.slow),
    pytest.param("adamw", 1e-3, marks=pytest.mark.slow)])
def test_100_steps_on_2_and_4_replicas_match_one_device(optimizer,
                                                        learning_rate):
  runs = {replicas: training.train(
      replicas, steps=100, optimizer=optimizer, learning_rate=learning_rate,
      l2=1e-3) for replicas in (1, 2, 4)}
  for replicas in (2, 4):
    assert training.max_difference(runs[replicas].weights,
                                   runs[1].weights) <= TOLERANCE
    assert runs[replicas].logs["loss"] == pytest.approx(runs[1].logs["loss"],
                                                        abs=TOLERANCE)


@pytest.mark.slow
def test_cnn_with_sync_batchnorm_matches_one_device():
  kwargs = dict(steps=30, model="cnn", dropout=0.0, optimizer="sgd",
                learning_rate=0.02, l2=1e-4)
  one = training.train(1, sync_batchnorm=True, **kwargs)
  synced = training.train(4, sync_batchnorm=True, **kwargs)
  local = training.train(4, sync_batchnorm=False, **kwargs)
  assert training.max_difference(synced.weights, one.weights) <= TOLERANCE
  # Per-replica statistics normalise 8 examples instead of 32: different.
  assert training.max_difference(local.weights, one.weights) > 1e-3


@pytest.mark.parametrize("replicas", [1, 4])
def test_clipping_uses_the_all_reduced_norm(replicas):
  clipped = training.train(replicas, steps=1, optimizer="sgd", momentum=0.0,
                           learning_rate=1.0, clip_norm=0.01)
  initial = training.train(replicas, steps=0, optimizer="sgd")
  update = [a - b for a, b in zip(clipped.weights, initial.weights)]
  norm = float(tf.linalg.global_norm([tf.constant(u) for u in update]))
  assert norm == pytest.approx(0.01, rel=1e-4)


@pytest.mark.slow
def test_clipped_training_agrees_across_replicas():
  kwargs = dict(steps=50, optimizer="sgd", learning_rate=0.1, clip_norm=0.5)
  one = training.train(1, **kwargs)
  four = training.train(4, **kwargs)
  unclipped = training.train(1, steps=50, optimizer="sgd", learning_rate=0.1)
  assert training.max_difference(four.weights, one.weights) <= TOLERANCE
  assert training.max_difference(unclipped.weights, one.weights) > 1e-3


@pytest.mark.parametrize("optimizer,learning_rate", [("sgd", 0.05),
                                                     ("adam", 1e-3)])
@pytest.mark.parametrize("replicas", [1, 2])
def test_accumulated_micro_batches_equal_one_large_batch(
    replicas, optimizer, learning_rate):
  kwargs = dict(steps=40, global_batch_size=64, optimizer=optimizer,
                learning_rate=learning_rate, l2=1e-3)
  whole = training.train(1, **kwargs)
  accumulated = training.train(replicas, accumulate_steps=4, **kwargs)
  assert training.max_difference(accumulated.weights,
                                 whole.weights) <= TOLERANCE
  assert accumulated.logs["loss"] == pytest.approx(whole.logs["loss"],
                                                   abs=TOLERANCE)


def softmax(logits):
  exp = np.exp(logits - logits.max(-1, keepdims=True))
  return exp / exp.sum(-1, keepdims=True)


def numpy_classification_metrics(labels, probabilities, num_classes):
  """Keras's definitions on the whole split, in numpy (micro-averaged)."""
  one_hot = np.eye(num_classes)[labels] if num_classes > 2 else (
      labels[:, None].astype(float))
  predicted = probabilities > 0.5
  true_positives = np.sum(predicted & (one_hot == 1))
  return {
      "precision": true_positives / predicted.sum(),
      "recall": true_positives / one_hot.sum(),
      "mse": np.mean(np.mean((one_hot - probabilities) ** 2, axis=-1)),
      "auc": sklearn_metrics.roc_auc_score(one_hot.ravel(),
                                           probabilities.ravel()),
  }


def assert_matches(logs, expected):
  for name, value in expected.items():
    tolerance = 5e-3 if name == "auc" else 1e-5  # Keras AUC: 200 thresholds.
    assert logs[name] == pytest.approx(value, abs=tolerance), name


@pytest.mark.parametrize("replicas,eval_batch,per_call", [
    (1, 48, 0), (2, 48, 0), (4, 48, 0),
    pytest.param(4, 400, 0, marks=pytest.mark.slow), (2, 48, 3)])
def test_multiclass_evaluation_is_exact(replicas, eval_batch, per_call):
  # 360 eval examples: 48 leaves a partial last batch; with 400 most
  # replicas receive only padding; per_call=3 evaluates the 8 steps in
  # calls of 3, 3 and 2 steps (progress is reported after each).
  result = training.train(replicas, steps=40, eval_batch_size=eval_batch,
                          eval_steps_per_call=per_call,
                          metrics=("accuracy", "precision", "recall", "auc",
                                   "mse"))
  reported = []
  logs = result.runner.evaluate(
      progress=lambda done, total: reported.append((done, total)))
  steps = -(-360 // eval_batch)
  assert reported == ([(3, 8), (6, 8), (8, 8)] if per_call else
                      [(steps, steps)])
  evaluated = catalogue.load_digits()[1]
  images = (evaluated.data.features.astype(np.float32)
            * evaluated.feature_scale)
  logits = result.model.network.predict(images, verbose=0)
  probabilities = softmax(logits)
  labels = evaluated.data.labels
  assert logs["examples"] == 360
  expected = numpy_classification_metrics(labels, probabilities, 10)
  expected["accuracy"] = np.mean(logits.argmax(-1) == labels)
  expected["loss"] = np.mean(-np.log(probabilities[np.arange(360), labels]))
  assert_matches(logs, expected)


@pytest.mark.slow
def test_binary_evaluation_is_exact():
  source = catalogue.make_synthetic(num_examples=512, num_eval_examples=101,
                                    shape=(6,), num_classes=2, seed=3)
  evaluated = source[1]
  kwargs = dict(steps=30, source=source, loss="binary_crossentropy",
                metrics=("accuracy", "precision", "recall", "auc"),
                eval_batch_size=24)
  one, four = training.train(1, **kwargs), training.train(4, **kwargs)
  logs = four.runner.evaluate()
  features = (evaluated.data.features.astype(np.float32)
              * evaluated.feature_scale)
  probabilities = 1 / (1 + np.exp(-four.model.network.predict(features,
                                                               verbose=0)))
  labels = evaluated.data.labels
  expected = numpy_classification_metrics(labels, probabilities, 2)
  del expected["mse"]
  expected["accuracy"] = np.mean((probabilities[:, 0] > 0.5) == labels)
  assert logs["examples"] == 101
  assert_matches(logs, expected)
  assert_matches(one.runner.evaluate(), {k: v for k, v in logs.items()
                                         if k != "examples"})


def test_regression_mse_is_exact():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(300, 5)).astype(np.float32)
  targets = features @ np.arange(5, dtype=np.float32) / 5
  source = (from_arrays(features[:250], targets[:250]),
            from_arrays(features[250:], targets[250:]))
  result = training.train(4, steps=50, source=source, loss="mse",
                          metrics=("mse",), eval_batch_size=16)
  logs = result.runner.evaluate()
  predictions = result.model.network.predict(features[250:], verbose=0)[:, 0]
  expected = np.mean((predictions - targets[250:]) ** 2)
  assert logs["examples"] == 50
  assert logs["mse"] == pytest.approx(expected, rel=1e-5)
  assert logs["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss,from_logits", [
    ("sparse_categorical_crossentropy", False),
    ("categorical_crossentropy", True),
    ("categorical_crossentropy", False),
])
def test_classification_losses_agree(loss, from_logits):
  reference = training.train(1, steps=20)
  other = training.train(2, steps=20, loss=loss, from_logits=from_logits)
  # Same math, other layout: the first logged loss values agree closely.
  assert other.logs["loss"] == pytest.approx(reference.logs["loss"],
                                             rel=1e-3)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_with_float32_outputs(policy):
  import keras
  result = training.train(2, steps=300, mixed_precision=policy,
                          learning_rate=3e-3)
  network = result.model.network
  assert network.layers[1].compute_dtype == policy.split("_")[1]
  assert network.layers[-1].compute_dtype == "float32"
  assert all(w.dtype == "float32" for w in network.weights)
  is_scaled = isinstance(result.model.optimizer,
                         keras.optimizers.LossScaleOptimizer)
  assert is_scaled == (policy == "mixed_float16")
  assert result.runner.evaluate()["accuracy"] >= 0.9
