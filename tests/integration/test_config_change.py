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


@pytest.mark.slow
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


def test_refused_even_when_allowed_naming_why(tmp_path):
  model_dir = tmp_path / "run"
  _run(model_dir, 10)
  written = (model_dir / "config.json").read_text()
  for option, value, why in (("model", "subclassed", "one network"),
                             ("optimizer", "adam", "one optimizer"),
                             ("mixed_precision", "mixed_float16",
                              "loss scaler")):
    with pytest.raises(ConfigError, match=f"{option}=.* cannot change.*{why}"
                       ".*even with allow_config_change; use a new"
                       " model_dir .*init_checkpoint="):
      _run(model_dir, 20, allow_config_change=True, **{option: value})
  assert (model_dir / "config.json").read_text() == written


def test_a_checkpoint_the_change_cannot_restore_is_named_not_discarded(
    tmp_path):
  model_dir = tmp_path / "run"
  synthetic = dict(model_dir=str(model_dir), dataset="synthetic",
                   synthetic_examples=256, synthetic_shape=[8, 8, 1],
                   **{**_BASE, "global_batch_size": 32})
  del synthetic["global_batch_size"]
  fit(None, global_batch_size=32, train_steps=10, num_classes=10,
      **synthetic)
  written = (model_dir / "config.json").read_text()
  with pytest.raises(ConfigError) as raised:  # Another output layer.
    fit(None, global_batch_size=32, train_steps=20, num_classes=12,
        allow_config_change=True, **synthetic)
  message = str(raised.value)
  assert message.startswith("the checkpoints in ")
  assert "were written with other settings (" in message
  assert "move them away" not in message and "scratch" not in message
  assert "resume with the earlier settings" in message
  # Nothing half-written: config.json still describes the checkpoints.
  assert (model_dir / "config.json").read_text() == written
  assert sorted(os.listdir(model_dir / "checkpoints"))


@pytest.mark.slow
def test_history_of_changes_and_a_restart_keeps_the_new_rate(tmp_path):
  model_dir = tmp_path / "run"
  _run(model_dir, 20)
  _run(model_dir, 30, allow_config_change=True, learning_rate=0.01)
  _, model = _run(model_dir, 40, allow_config_change=True,
                  learning_rate=0.01, momentum=0.5)
  assert _rate(model) == pytest.approx(0.01)
  assert model.optimizer.momentum == 0.5
  record = json.loads((model_dir / "config.json").read_text())
  assert record["changes"] == [{"step": 20, "learning_rate": [0.05, 0.01]},
                               {"step": 30, "momentum": [0.0, 0.5]}]
  assert record["train"]["learning_rate"] == 0.01  # The latest settings.
  # Unchanged settings: the check compares with the latest ones.
  _, model = _run(model_dir, 50, learning_rate=0.01, momentum=0.5)
  assert _rate(model) == pytest.approx(0.01)


def test_plateau_reductions_survive_a_resume_without_rate_changes(tmp_path):
  """The restored rate wins when the rate's settings did not change."""
  model_dir = tmp_path / "run"
  _, model = _run(model_dir, 20)
  model.optimizer.learning_rate.assign(0.0125)  # As a plateau would.
  checkpoints = trainer.checkpointing.Checkpointer(
      trainer.checkpointing.build_checkpoint(model, tf_step(20)),
      tf_step(20), directory=str(model_dir / "checkpoints"), is_chief=True)
  checkpoints.save(20)
  _, resumed = _run(model_dir, 20, allow_config_change=True, momentum=0.3)
  assert _rate(resumed) == pytest.approx(0.0125)
  assert resumed.optimizer.momentum == 0.3


def tf_step(value):
  import tensorflow as tf
  return tf.Variable(value, dtype=tf.int64, trainable=False)


def _weights_of(run_dir):
  """The network's weights exported at the end of a run."""
  import tensorflow as tf
  exported = tf.saved_model.load(str(run_dir / "export"))
  return sorted((v.name, v.numpy()) for v in exported.variables)


@pytest.mark.slow
def test_warm_start_from_another_runs_weights(tmp_path, caplog):
  first, second = tmp_path / "first", tmp_path / "second"
  result, _ = _run(first, 20, optimizer="adam", momentum=0.9)
  weights = result.model.get_weights()
  # Another optimizer: the weights alone load; a tiny rate keeps them.
  warm, model = _run(second, 20, init_checkpoint=str(first),
                     learning_rate=1e-30)
  assert warm.step == 20 and int(model.optimizer.iterations) == 20
  assert "Warm start: loaded the weights of " in caplog.text
  for got, want in zip(warm.model.get_weights(), weights):
    np.testing.assert_allclose(got, want, atol=1e-6)
  # A restart resumes from its own checkpoint, not from init_checkpoint.
  caplog.clear()
  _, model = _run(second, 30, init_checkpoint=str(first),
                  learning_rate=1e-30)
  assert int(model.optimizer.iterations) == 30
  assert "has checkpoints of its own: resuming from them" in caplog.text
  assert "Warm start" not in caplog.text


def test_warm_start_with_the_optimizer_state(tmp_path):
  first, second = tmp_path / "first", tmp_path / "second"
  _, trained = _run(first, 20, momentum=0.9)
  slots = [v.numpy() for v in trained.optimizer.variables
           if "momentum" in v.path]
  assert slots and any(np.abs(s).max() > 0 for s in slots)
  _, model = _run(second, 20, momentum=0.9, learning_rate=0.01,
                  init_checkpoint=str(first / "checkpoints" / "ckpt-20"),
                  init_optimizer=True)
  assert int(model.optimizer.iterations) == 40  # 20 loaded + 20 here.
  assert _rate(model) == pytest.approx(0.01)  # This run's rate.


@pytest.mark.parametrize("source,match", [
    ("missing", "init_checkpoint: .*missing is neither a checkpoint"),
    ("cnn", "init_checkpoint: .*ckpt-10 does not match the model \\(")])
def test_warm_start_errors_are_one_sentence(tmp_path, source, match):
  if source == "cnn":
    _run(tmp_path / "cnn", 10, model="cnn")
  with pytest.raises(ConfigError, match=match):
    _run(tmp_path / "new", 10, init_checkpoint=str(tmp_path / source))
  assert not (tmp_path / "new").exists()


@pytest.mark.slow
@pytest.mark.parametrize("extra", [{"cpu_devices": 2},
                                   {"mixed_precision": "mixed_float16"}],
                         ids=["two_replicas", "loss_scaled"])
def test_a_schedule_and_a_float_rate_swap_both_ways(tmp_path, extra):
  model_dir = tmp_path / "run"
  decay = dict(lr_schedule="step_decay", decay_steps=10, decay_rate=0.5)
  extra = {**extra, "momentum": 0.9}
  _run(model_dir, 20, **decay, **extra)
  _, model = _run(model_dir, 30, allow_config_change=True,
                  lr_schedule="constant", learning_rate=0.02, **extra)
  assert _rate(model) == pytest.approx(0.02)
  slots = [v for v in model.optimizer.variables if "momentum" in v.path]
  assert slots and all(np.abs(v.numpy()).max() > 0 for v in slots)
  _, model = _run(model_dir, 40, allow_config_change=True, **decay,
                  learning_rate=0.02, **extra)
  iterations = int(model.optimizer.iterations.numpy())
  assert iterations > 20
  assert _rate(model) == pytest.approx(0.02 * 0.5 ** (iterations // 10))


def test_a_users_compiled_optimizer_rate_takes_effect(tmp_path):
  def model_fn(rate):
    def build():
      model = keras.Sequential([keras.Input(shape=(64,)),
                                keras.layers.Dense(10)])
      model.compile(optimizer=keras.optimizers.SGD(rate),
                    loss=keras.losses.SparseCategoricalCrossentropy(
                        from_logits=True))
      return model
    return build

  options = dict(model_dir=str(tmp_path / "run"), global_batch_size=32,
                 cpu_devices=1, progress="none", steps_per_loop=10)
  first = fit(model_fn(0.05), _digits(), train_steps=20, **options)
  weights = first.model.get_weights()
  with pytest.raises(ConfigError, match="another model"):
    fit(model_fn(1e-30), _digits(), train_steps=40, **options)
  resumed = fit(model_fn(1e-30), _digits(), train_steps=40,
                allow_config_change=True, **options)
  assert _rate(resumed.model) == pytest.approx(1e-30)
  for got, want in zip(resumed.model.get_weights(), weights):
    np.testing.assert_allclose(got, want, atol=1e-6)  # 20 steps at 1e-30.
  record = json.loads((tmp_path / "run" / "config.json").read_text())
  assert record["changes"][0]["step"] == 20
  assert "optimizer_config" in record["changes"][0]["model_fingerprint"]


@pytest.mark.slow
@pytest.mark.parametrize("option,then", [("seed", 4),
                                         ("global_batch_size", 64)])
def test_a_changed_data_setting_changes_what_follows(tmp_path, option, then):
  """Against the same checkpoint resumed unchanged: the new data order or
  batch is what trains from the resumed step."""
  import shutil
  same, changed = tmp_path / "same", tmp_path / "changed"
  _run(same, 20)
  shutil.copytree(same, changed)
  unchanged, _ = _run(same, 30)
  result, _ = _run(changed, 30, allow_config_change=True, **{option: then})
  assert result.step == 30
  differences = [np.abs(a - b).max() for a, b in
                 zip(result.model.get_weights(), unchanged.model.get_weights())]
  assert max(differences) > 1e-4
  record = json.loads((changed / "config.json").read_text())
  assert record["changes"] == [{"step": 20, option: [_BASE[option], then]}]
