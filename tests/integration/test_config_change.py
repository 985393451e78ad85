"""Resuming with `allow_config_change`: each changed setting takes effect.

A run trains to step 20, then resumes to step 40 in the same model_dir with
one result-changing option changed; the test reads the new value back from
the objects that train (optimizer, wrapper, network) after the resume, and
checks that the weights and the optimizer's state (its iterations) carried
over. In-process, on 1 replica, with scikit-learn's digits.
"""

import json
import os

import keras
import numpy as np
import pytest

from datasets import from_arrays
from launch import fit
from launch.errors import ConfigError
import trainer


class Probe(trainer.Model):
  """The harness's wrapper, remembered so the test can read it back."""

  built = []

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    Probe.built.append(self)


def _digits(image: bool = False):
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  features = (digits.images / 16.0).astype(np.float32)
  features = features[..., None] if image else features.reshape(-1, 64)
  return from_arrays(features[:640], digits.target[:640])


_BASE = dict(global_batch_size=32, cpu_devices=1, progress="none",
             steps_per_loop=10, checkpoint_every=10, optimizer="sgd",
             momentum=0.0, learning_rate=0.05, seed=3)


def _run(model_dir, steps: int, **options):
  settings = {**_BASE, "model": "mlp", **options}
  image = settings["model"] == "cnn"
  Probe.built.clear()
  result = fit(None, _digits(image), model_dir=str(model_dir),
               train_steps=steps, model_class=Probe, **settings)
  return result, Probe.built[-1]


def _rate(model) -> float:
  return float(np.array(model.optimizer.learning_rate))


def _layer(network, kind):
  return [layer for layer in network._flatten_layers()  # pylint: disable=protected-access
          if isinstance(layer, kind)]


# (option, first value, resumed value, reads the value in effect, extra
# options of both runs).
CASES = [
    ("learning_rate", 0.05, 1e-30, _rate, {}),
    ("momentum", 0.0, 0.7, lambda m: m.optimizer.momentum, {}),
    ("weight_decay", 0.004, 0.25, lambda m: m.optimizer.weight_decay,
     {"optimizer": "adamw"}),
    ("clip_norm", 0.0, 0.5, lambda m: m.clip_norm, {}),
    ("accumulate_steps", 1, 2, lambda m: m.accumulate_steps, {}),
    ("dropout", 0.1, 0.6,
     lambda m: _layer(m.network, keras.layers.Dropout)[0].rate,
     {"model": "subclassed"}),
    ("l2", 0.0, 0.01,
     lambda m: getattr(_layer(m.network, keras.layers.Dense)[0]
                       .kernel_regularizer, "l2", 0.0), {}),
    ("sync_batchnorm", False, True,
     lambda m: _layer(m.network, keras.layers.BatchNormalization)[0]
     .synchronized, {"model": "cnn"}),
    ("from_logits", True, False,
     lambda m: m.network.get_layer("mlp").layers[-1].activation.__name__
     != "linear", {}),
    # And the reverse: slots that were not there start at zero.
    ("momentum", 0.9, 0.0, lambda m: m.optimizer.momentum, {}),
    # A schedule: the rate in effect is the new schedule at the step.
    ("lr_schedule", "warmup_cosine", "constant", _rate,
     {"warmup_steps": 5}),
    ("decay_rate", 0.5, 0.1, _rate,
     {"lr_schedule": "step_decay", "decay_steps": 10}),
    ("decay_steps", 10, 5, _rate,
     {"lr_schedule": "step_decay", "decay_rate": 0.5}),
    ("warmup_steps", 5, 100, _rate, {"lr_schedule": "warmup_cosine"}),
]


def _expected(option, value, extra, step: int = 20):
  """What `read` gives at `step` (resumed at 20) under `value`."""
  if option == "lr_schedule":
    return 0.05
  if option in ("decay_rate", "decay_steps"):
    settings = {**extra, option: value}
    return 0.05 * settings["decay_rate"] ** (step // settings["decay_steps"])
  if option == "warmup_steps":
    return 0.05 * step / 100  # Still warming up, linearly.
  if option == "from_logits":
    return True  # Probabilities: a softmax output layer.
  return value


@pytest.mark.parametrize("option,first,then,read,extra", CASES,
                         ids=[case[0] for case in CASES])
def test_a_changed_setting_takes_effect_on_resume(tmp_path, option, first,
                                                  then, read, extra):
  model_dir = tmp_path / "run"
  first_result, first_model = _run(model_dir, 20, **extra, **{option: first})
  weights = first_result.model.get_weights()
  assert read(first_model) != pytest.approx(_expected(option, then, extra))
  with pytest.raises(ConfigError, match="allow_config_change"):
    _run(model_dir, 40, **extra, **{option: then})
  # Resumed with the change allowed, but stopped right after the restore:
  # train_steps=20 trains no further, so the values read are the restore's.
  _, resumed = _run(model_dir, 20, allow_config_change=True, **extra,
                    **{option: then})
  assert read(resumed) == pytest.approx(_expected(option, then, extra),
                                        rel=1e-5)
  assert int(resumed.optimizer.iterations) == 20  # The state carried over.
  assert len(weights) == len(resumed.network.get_weights())
  for restored, saved in zip(resumed.network.get_weights(), weights):
    np.testing.assert_array_equal(np.asarray(restored), saved)
  # Trained on: still in effect (a rebuild or a restore would undo it).
  result, trained = _run(model_dir, 40, allow_config_change=True, **extra,
                         **{option: then})
  assert result.step == 40
  assert read(trained) == pytest.approx(_expected(option, then, extra, 40),
                                        rel=1e-5)
  record = json.loads((model_dir / "config.json").read_text())
  assert record["changes"] == [{"step": 20, option: [first, then]}]
