"""End to end in this process: config -> strategy -> data -> loop -> files."""

import dataclasses
import json
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

from datasets.config import DataConfig
from launch.distributed import cluster as cluster_lib
from launch.options import resolve as config_lib
from launch.run import plan as plan_lib
from launch.errors import ConfigError
from tests.training import run_config
from trainer.config import TrainConfig


def make_config(model_dir, *, cpu_devices=2, **train) -> config_lib.RunConfig:
  train.setdefault("train_steps", 300)
  return config_lib.RunConfig(
      data=DataConfig(global_batch_size=64),
      train=TrainConfig(model_dir=str(model_dir), steps_per_loop=50,
                        eval_every=100, checkpoint_every=100, **train),
      cpu_devices=cpu_devices)


def train(config):
  return run_config(config)


def read_scalars(logdir):
  """Scalars of one event directory, read with TensorBoard's own loader."""
  accumulator = event_accumulator.EventAccumulator(
      logdir, size_guidance={event_accumulator.TENSORS: 0})
  accumulator.Reload()
  return {tag: [(event.step, float(tf.make_ndarray(event.tensor_proto)))
                for event in accumulator.Tensors(tag)]
          for tag in accumulator.Tags()["tensors"]
          if accumulator.SummaryMetadata(tag).plugin_data.plugin_name
          == "scalars"}


def read_hparams(logdir):
  """(trial id, hparams) of the session in `logdir` (model_dir/summaries)."""
  from tensorboard.plugins.hparams import plugin_data_pb2
  accumulator = event_accumulator.EventAccumulator(logdir)
  accumulator.Reload()
  content = accumulator.PluginTagToContent("hparams")
  data = plugin_data_pb2.HParamsPluginData.FromString(
      content["_hparams_/session_start_info"])
  return data.session_start_info.group_name, {
      name: value.WhichOneof("kind") and getattr(value,
                                                 value.WhichOneof("kind"))
      for name, value in data.session_start_info.hparams.items()}


def read_jsonl(path):
  with open(path, encoding="utf-8") as stream:
    return [json.loads(line) for line in stream]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("run")
  logs = train(make_config(model_dir))
  return model_dir, logs


def test_digits_reaches_high_accuracy(trained):
  _, logs = trained
  assert logs["accuracy"] >= 0.95
  assert logs["examples"] == 360


def test_model_dir_layout(trained):
  model_dir, _ = trained
  assert sorted(os.listdir(model_dir)) == [
      "checkpoints", "config.json", "export", "metrics.csv", "metrics.jsonl",
      "summaries"]
  assert tf.train.latest_checkpoint(model_dir / "checkpoints").endswith(
      "ckpt-300")
  assert sorted(os.listdir(model_dir / "export")) == [
      "metadata.json", "model.keras", "saved_model"]
  saved = json.loads((model_dir / "config.json").read_text())
  assert saved["train"]["train_steps"] == 300


def test_hparams_are_readable_by_tensorboard(trained):
  model_dir, _ = trained
  # The session is a run above train/ and eval/ (tests/trainer/
  # test_tensorboard.py reads it through the HParams plugin's backend).
  trial_id, hparams = read_hparams(str(model_dir / "summaries"))
  assert trial_id == str(model_dir)
  assert hparams["model"] == "mlp" and hparams["dataset"] == "digits"
  assert hparams["global_batch_size"] == 64 and hparams["replicas"] == 2
  assert hparams["learning_rate"] == pytest.approx(3e-3)
  assert hparams["strategy"] == "mirrored"
  assert hparams["loss_function"] == "sparse_categorical_crossentropy"
  assert "loss" not in hparams  # The loss metric's name in the same table.


def test_event_files_hold_every_scalar(trained):
  model_dir, _ = trained
  train_scalars = read_scalars(str(model_dir / "summaries" / "train"))
  assert set(train_scalars) == {"loss", "accuracy", "schedule/learning_rate",
                                "speed/steps_per_sec",
                                "speed/examples_per_sec"}
  assert [step for step, _ in train_scalars["loss"]] == [50, 100, 150, 200,
                                                         250, 300]
  eval_scalars = read_scalars(str(model_dir / "summaries" / "eval"))
  assert [step for step, _ in eval_scalars["accuracy"]] == [100, 200, 300]
  assert set(eval_scalars) == {"loss", "accuracy"}  # examples: jsonl only.
  assert eval_scalars["accuracy"][-1][1] >= 0.95


def test_metrics_jsonl_has_train_and_eval_lines(trained):
  model_dir, logs = trained
  records = read_jsonl(model_dir / "metrics.jsonl")
  train_lines = [r for r in records if r["split"] == "train"]
  eval_lines = [r for r in records if r["split"] == "eval"]
  assert len(train_lines) == 6 and len(eval_lines) == 3
  assert all(r["examples_per_sec"] > 0 and "loss" in r and "accuracy" in r
             for r in train_lines)
  assert eval_lines[-1]["examples"] == 360
  assert eval_lines[-1]["accuracy"] == pytest.approx(logs["accuracy"])


def test_export_serves_the_trained_model_in_a_fresh_load(trained):
  model_dir, _ = trained
  import keras
  from datasets import catalogue
  evaluated = catalogue.load_digits()[1]
  images = (evaluated.data.features[:16].astype(np.float32)
            * evaluated.feature_scale)
  served = tf.saved_model.load(str(model_dir / "export" / "saved_model"))
  logits = served.serve(tf.constant(images)).numpy()
  reloaded = keras.models.load_model(model_dir / "export" / "model.keras")
  np.testing.assert_allclose(reloaded.predict(images, verbose=0), logits,
                             atol=1e-5)
  accuracy = np.mean(logits.argmax(-1) == evaluated.data.labels[:16])
  assert accuracy >= 0.8


def test_rerun_resumes_at_the_saved_step(trained, tmp_path):
  model_dir, _ = trained
  before = len(read_jsonl(model_dir / "metrics.jsonl"))
  logs = train(make_config(model_dir, train_steps=400))
  new_lines = read_jsonl(model_dir / "metrics.jsonl")[before:]
  assert [r["step"] for r in new_lines if r["split"] == "train"] == [350, 400]
  assert tf.train.latest_checkpoint(model_dir / "checkpoints").endswith(
      "ckpt-400")
  assert logs["accuracy"] >= 0.95


def test_batch_not_divisible_by_replicas_fails_before_writing(tmp_path):
  config = config_lib.RunConfig(
      data=DataConfig(global_batch_size=10),
      train=TrainConfig(model_dir=str(tmp_path / "run")), cpu_devices=4)
  with pytest.raises(ConfigError, match="does not divide over the 4"):
    plan_lib.plan_run(config, cluster_lib.ClusterInfo())
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("optimizer", ["rmsprop", "sgd"])
def test_cnn_trains_resumes_and_exports(tmp_path, optimizer):
  config = make_config(tmp_path, model="cnn", optimizer=optimizer,
                       train_steps=100, learning_rate=0.003 if optimizer
                       == "rmsprop" else 0.05)
  logs = train(config)
  assert logs["accuracy"] >= 0.85
  moving_means = [
      w for w in _restored_cnn_weights(tmp_path, optimizer)
      if "moving_mean" in w.path]
  assert moving_means and all(np.any(w.numpy() != 0) for w in moving_means)
  assert (tmp_path / "export" / "model.keras").exists()


def _restored_cnn_weights(model_dir, optimizer):
  """Restores the latest checkpoint into a fresh CNN, as a rerun would."""
  from trainer import build, checkpointing
  model = build.build_model(TrainConfig(model="cnn", optimizer=optimizer),
                            tf.distribute.get_strategy(),
                            input_shape=(8, 8, 1), num_classes=10)
  step = tf.Variable(0, dtype=tf.int64)
  checkpointing.build_checkpoint(model, step).restore(
      tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
  ).assert_existing_objects_matched()
  assert int(step.numpy()) == 100
  return model.network.weights


def test_schedules_and_csv_follow_the_run(tmp_path):
  model_dir = tmp_path / "run"
  config = make_config(model_dir, train_steps=200, optimizer="sgd",
                       learning_rate=0.1, lr_schedule="step_decay",
                       decay_steps=100, decay_rate=0.5)
  train(config)
  rates = {r["step"]: r["learning_rate"]
           for r in read_jsonl(model_dir / "metrics.jsonl")
           if r["split"] == "train"}
  # Logged after the loop: the rate the next step will use.
  assert rates[50] == pytest.approx(0.1)
  assert rates[100] == pytest.approx(0.05)
  assert rates[200] == pytest.approx(0.025)
  # metrics.csv: one row per evaluation, as Keras's CSVLogger per epoch.
  import csv
  with open(model_dir / "metrics.csv", newline="", encoding="utf-8") as stream:
    reader = csv.DictReader(stream)
    rows = list(reader)
  assert reader.fieldnames[:3] == ["epoch", "step", "time"]
  assert reader.fieldnames[-2:] == ["val_loss", "val_accuracy"]
  assert "examples" not in reader.fieldnames
  assert [(int(row["epoch"]), int(row["step"])) for row in rows] == [
      (0, 100), (1, 200)]
  jsonl = read_jsonl(model_dir / "metrics.jsonl")
  loops = [r for r in jsonl if r["split"] == "train" and r["step"] > 100]
  assert float(rows[-1]["loss"]) == pytest.approx(
      sum(r["loss"] for r in loops) / len(loops))  # Equal 50-step loops.
  assert float(rows[-1]["learning_rate"]) == pytest.approx(0.025)
  assert float(rows[-1]["val_accuracy"]) == pytest.approx(
      jsonl[-1]["accuracy"])


def test_early_stopping_ends_a_stuck_run_with_checkpoint_and_export(tmp_path):
  model_dir = tmp_path / "run"
  # Learning rate 0: the eval loss never improves after the first eval.
  config = make_config(model_dir, train_steps=1000, optimizer="sgd",
                       learning_rate=1e-12, early_stopping_patience=2)
  config = dataclasses.replace(config, train=dataclasses.replace(
      config.train, eval_every=20))
  logs = train(config)
  assert logs["step"] == 60  # Evals at 20 (best), 40, 60: patience 2.
  assert tf.train.latest_checkpoint(model_dir / "checkpoints").endswith(
      "ckpt-60")
  assert (model_dir / "export" / "saved_model").exists()
  assert [r["step"] for r in read_jsonl(model_dir / "metrics.jsonl")
          if r["split"] == "train"][-1] == 60


def test_best_checkpoint_keeps_the_best_evaluation(tmp_path):
  model_dir = tmp_path / "run"
  config = make_config(model_dir, train_steps=200, keep_best_checkpoint=True,
                       monitor="accuracy")
  train(config)
  evals = [r for r in read_jsonl(model_dir / "metrics.jsonl")
           if r["split"] == "eval"]
  best = max(evals, key=lambda r: (r["accuracy"], -r["step"]))
  best_path = tf.train.latest_checkpoint(model_dir / "best_checkpoint")
  assert best_path.endswith(f"ckpt-{best['step']}")


def test_main_run_takes_callbacks_and_the_old_hooks_with_a_warning(
    monkeypatch):
  from launch import main  # pylint: disable=import-outside-toplevel
  started = []
  monkeypatch.setattr(main.console, "configure_logging",
                      lambda **kwargs: None)  # No process-wide handlers.
  monkeypatch.setattr(main.app, "run",
                      lambda function, flags_parser: started.append(function))
  marker = object()
  main.run(callbacks=[marker])
  assert started[-1].keywords["callbacks"] == [marker]
  with pytest.warns(DeprecationWarning, match="is now callbacks="):
    main.run(hooks=[marker])
  assert started[-1].keywords["callbacks"] == [marker]
  with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
    main.run(callbacks=[marker], hooks=[marker])
