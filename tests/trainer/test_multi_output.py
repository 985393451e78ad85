"""Two named outputs: weighted loss, per-output metrics, replica equivalence."""

import numpy as np
import pytest

from datasets import catalogue
from launch.run import checks
from launch.errors import ConfigError
from tests import training
from trainer.config import TrainConfig

LOSSES = (("digit", "sparse_categorical_crossentropy"),
          ("large", "binary_crossentropy"))
SETTINGS = dict(model="two_head", output_losses=LOSSES,
                loss_weights=(("large", 0.5),), metrics=("accuracy",),
                optimizer="sgd", learning_rate=0.1, l2=1e-4)


@pytest.fixture(scope="module")
def source():
  return catalogue.load_digits("digits_two_targets")  # (train, eval).


def log_softmax(logits):
  shifted = logits - logits.max(axis=1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_weighted_loss_and_per_output_metrics_are_exact(source):
  trained = training.train(2, steps=30, source=source, eval_batch_size=48,
                           **SETTINGS)
  logs = trained.runner.evaluate()
  evaluated = source[1]
  features = (evaluated.data.features.astype(np.float32)
              * evaluated.feature_scale)
  outputs = trained.model.network(features, training=False)
  digit_logits = outputs["digit"].numpy()
  large_logits = outputs["large"].numpy()[:, 0]
  digit, large = evaluated.data.labels["digit"], evaluated.data.labels["large"]
  digit_loss = -log_softmax(digit_logits)[np.arange(360), digit]
  # Keras's binary cross-entropy clips probabilities to [1e-7, 1 - 1e-7].
  p = np.clip(1 / (1 + np.exp(-large_logits)), 1e-7, 1 - 1e-7)
  large_loss = -(large * np.log(p) + (1 - large) * np.log(1 - p))
  regularization = float(sum(trained.model.network.losses))
  assert logs["examples"] == 360
  assert logs["digit_loss"] == pytest.approx(digit_loss.mean(), abs=1e-5)
  assert logs["large_loss"] == pytest.approx(large_loss.mean(), abs=1e-4)
  assert logs["loss"] == pytest.approx(
      digit_loss.mean() + 0.5 * large_loss.mean() + regularization, abs=1e-4)
  assert logs["digit_accuracy"] == pytest.approx(
      np.mean(digit_logits.argmax(1) == digit), abs=1e-6)
  assert logs["large_accuracy"] == pytest.approx(
      np.mean((large_logits > 0) == large), abs=1e-6)


@pytest.mark.slow
def test_one_and_two_replicas_and_accumulation_agree(source):
  one = training.train(1, steps=40, source=source, **SETTINGS)
  two = training.train(2, steps=40, source=source, **SETTINGS)
  accumulated = training.train(2, steps=40, source=source, accumulate_steps=2,
                               **SETTINGS)
  assert training.max_difference(one.weights, two.weights) <= 1e-5
  assert training.max_difference(two.weights, accumulated.weights) <= 1e-5


@pytest.mark.parametrize("changes,message", [
    ({"output_losses": (("digit", "mse"),)},
     "--loss names the outputs digit, but digits_two_targets's labels are"
     " digit, large"),
    ({"output_losses": ()}, "give one loss per output"),
    ({"output_losses": (("digit", "binary_crossentropy"),
                        ("large", "binary_crossentropy"))},
     "binary_crossentropy needs 2 classes, but digits_two_targets digit has"
     " 10"),
])
def test_losses_must_match_the_labels(source, changes, message):
  config = TrainConfig(**{**SETTINGS, "loss_weights": (), **changes})
  with pytest.raises(ConfigError) as raised:
    checks.check_outputs(config, source[0])
  assert message in str(raised.value)
