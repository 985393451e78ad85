import dataclasses
import json
import os

import pytest

from datasets.config import DataConfig
from launch.options import resolve as config_lib
from launch.run import resume
from launch.errors import ConfigError
from trainer.config import TrainConfig


def make_config(tmp_path, *, epochs=None, **changes) -> config_lib.RunConfig:
  data_fields = {field.name for field in dataclasses.fields(DataConfig)}
  data = DataConfig(**{k: v for k, v in changes.items() if k in data_fields})
  train = TrainConfig(model_dir=str(tmp_path / "run"),
                      **{k: v for k, v in changes.items()
                         if k not in data_fields and k != "run"})
  return config_lib.RunConfig(data=data, train=train, epochs=epochs,
                              **changes.get("run", {}))


def test_defaults_are_valid(tmp_path):
  config_lib.validate(make_config(tmp_path))


@pytest.mark.parametrize("changes,message", [
    ({"model": "resnet"}, "--model=resnet is not one of mlp, cnn"),
    ({"name": "cifar"}, "--dataset=cifar is not one of"),
    ({"optimizer": "lamb"}, "--optimizer=lamb is not one of"),
    ({"run": {"strategy": "tpu"}}, "--strategy=tpu is not one of"),
    ({"global_batch_size": 0}, "--global_batch_size=0 must be positive"),
    ({"train_steps": -5}, "--train_steps=-5 must be positive"),
    ({"steps_per_loop": 0}, "--steps_per_loop=0 must be positive"),
    ({"eval_every": -1}, "--eval_every=-1 must be zero or more"),
    ({"learning_rate": -0.1}, "--learning_rate=-0.1 must be positive"),
    ({"run": {"cpu_devices": 0}}, "--cpu_devices=0 must be positive"),
    ({"validation_split": 1.0}, "--validation_split=1.0 must be in [0, 1)"),
    ({"data_dir": "/nonexistent/dir"}, "--data_dir=/nonexistent/dir is not"),
    ({"loss": "hinge"}, "--loss=hinge is not one of"),
    ({"metrics": ("accuracy", "f1")}, "--metrics=f1 is not one of"),
    ({"loss": "mse", "metrics": ("accuracy",)}, "with --loss=mse (regression) use --metrics=mae,mse"),
    ({"mixed_precision": "float16"}, "--mixed_precision=float16 is not"),
    ({"dropout": 1.0}, "--dropout=1.0 must be in [0, 1)"),
    ({"accumulate_steps": 0}, "--accumulate_steps=0 must be positive"),
    ({"clip_norm": -1.0}, "--clip_norm=-1.0 must be zero or more"),
    ({"output_losses": (("a", "hinge"),)}, "--loss=hinge is not one of"),
    ({"loss_weights": (("a", 1.0),)}, "--loss_weights needs a loss per"),
    ({"output_losses": (("a", "mse"),), "loss_weights": (("b", 1.0),)},
     "--loss_weights names b, which --loss does not (a)"),
    ({"output_losses": (("a", "mse"),), "monitor": "accuracy"},
     "--monitor=accuracy is not an eval metric of this run (loss, examples,"
     " a_loss, a_accuracy)"),
])
def test_validate_names_the_bad_flag(tmp_path, changes, message):
  with pytest.raises(ConfigError) as raised:
    config_lib.validate(make_config(tmp_path, **changes))
  assert message in str(raised.value)


def test_bad_epochs(tmp_path):
  with pytest.raises(ConfigError, match="--epochs=-1 must be positive"):
    config_lib.validate(make_config(tmp_path, epochs=-1))


def test_model_dir_checks_do_not_write(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(ConfigError, match="exists and is not a directory"):
    config_lib.check_model_dir(str(blocker))
  with pytest.raises(ConfigError, match="--model_dir is required"):
    config_lib.check_model_dir("")
  config_lib.check_model_dir(str(tmp_path / "a" / "b"))
  assert not (tmp_path / "a").exists()


def test_model_dir_under_a_file_is_not_writable(tmp_path):
  # Root ignores permission bits, so a file in the path is the portable case.
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(ConfigError, match="is not writable"):
    config_lib.check_model_dir(str(blocker / "run"))


def test_epochs_resolve_to_steps_rounding_up(tmp_path):
  config = make_config(tmp_path, epochs=2.0, global_batch_size=64)
  resolved = config_lib.resolve_train_steps(config, num_train_examples=1437)
  assert resolved.train.train_steps == 45  # ceil(2 * 1437 / 64)


def test_write_config_round_trips(tmp_path):
  config = make_config(tmp_path)
  os.makedirs(config.train.model_dir)
  path = resume.write_config(config)
  saved = json.loads(open(path, encoding="utf-8").read())
  assert saved["train"]["model"] == "mlp"
  assert saved["data"]["global_batch_size"] == 64
  assert not os.path.exists(path + ".tmp")


@pytest.mark.parametrize("saved", ["", "checkpoints", "best_checkpoint"])
def test_only_a_checkpoint_blocks_a_rerun_with_other_settings(tmp_path,
                                                              saved):
  first = make_config(tmp_path, learning_rate=0.5)
  os.makedirs(first.train.model_dir)
  resume.write_config(first, {"class": "Sequential", "parameters": 10})
  if saved:  # The files a CheckpointManager leaves; not the state file.
    os.makedirs(os.path.join(first.train.model_dir, saved))
    open(os.path.join(first.train.model_dir, saved, "ckpt-7.index"),
         "w").close()
  rerun = make_config(tmp_path, learning_rate=0.1)
  other_model = {"class": "Sequential", "parameters": 12}
  if not saved:  # A run that failed before its first save.
    resume.check_resume_compatible(rerun)
    resume.check_fingerprint(rerun, other_model)
    return
  with pytest.raises(ConfigError, match="learning_rate=0.5 -> 0.1"):
    resume.check_resume_compatible(rerun)
  with pytest.raises(ConfigError, match="parameters 10 -> 12"):
    resume.check_fingerprint(rerun, other_model)


@pytest.mark.parametrize("loss,weights,message", [
    ("a:mse,b", [], "--loss: 'b' is not name:value"),
    ("a:mse,a:mse", [], "--loss names an output twice"),
    ("a:mse", ["a:-1"], "--loss_weights: '-1' is not a weight >= 0"),
    ("a:mse", ["a:x"], "--loss_weights: 'x' is not a weight >= 0"),
])
def test_bad_loss_pairs(loss, weights, message):
  with pytest.raises(ConfigError) as raised:
    config_lib.from_options(config_lib.resolve_options(
        {"loss": loss, "loss_weights": weights}))
  assert message in str(raised.value)
