"""`trainer.fit` / `trainer.evaluate`: the trainer's front door, without launch."""

import json

import keras
import numpy as np
import pytest

import trainer
from datasets import from_arrays
from tests.conftest import make_strategy
from trainer import layout


def _digits_sources():
  from sklearn import datasets as sklearn_datasets
  digits = sklearn_datasets.load_digits()
  features = (digits.images / 16.0).astype(np.float32).reshape(-1, 64)
  return (from_arrays(features[:1400], digits.target[:1400]),
          from_arrays(features[1400:], digits.target[1400:]))


def _config(model_dir, **train):
  train = dict(dict(model="mlp", train_steps=20, steps_per_loop=5,
                    eval_every=10, checkpoint_every=10, model_dir=model_dir,
                    learning_rate=0.01), **train)
  return trainer.FitConfig(train=trainer.TrainConfig(**train),
                           global_batch_size=32, seed=1, progress="none")


def _built_in_model(strategy, config):
  return trainer.build_model(config.train, strategy, input_shape=(64,),
                             num_classes=10)


class _Recorder(trainer.Callback):
  """The harness's own callback, in the same list as Keras's."""

  def __init__(self):
    self.evals = []

  def on_eval_end(self, step, logs):
    self.evals.append(step)
    return False


def test_fit_trains_saves_exports_then_evaluate_reads_the_checkpoint(
    tmp_path):
  strategy = make_strategy(2)
  train, held_out = _digits_sources()
  config = _config(str(tmp_path / "run"))
  recorder, logger = _Recorder(), keras.callbacks.CSVLogger(
      str(tmp_path / "epochs.csv"))
  result = trainer.fit(strategy=strategy,
                       model=_built_in_model(strategy, config),
                       train_data=train, eval_data=held_out, config=config,
                       callbacks=[recorder, logger])
  paths = layout.ModelDir(config.train.model_dir)
  assert result.step == 20
  assert recorder.evals == [10, 20]
  assert result.logs["examples"] == 397
  assert [row["split"] for row in result.history].count("eval") == 2
  assert (tmp_path / "epochs.csv").read_text().count("\n") == 3
  metadata = json.loads(
      (tmp_path / "run" / "export" / "metadata.json").read_text())
  assert metadata["num_classes"] == 10 and metadata["step"] == 20
  assert trainer.resume_step(config.train.model_dir) == 20
  with open(paths.metrics_jsonl, encoding="utf-8") as rows:
    assert len(rows.readlines()) == len(result.history)

  evaluated = trainer.evaluate(
      strategy=strategy, model=_built_in_model(strategy, config),
      eval_data=held_out, config=config)
  assert evaluated.step == 20
  assert abs(evaluated.logs["loss"] - result.logs["loss"]) < 1e-5


def test_the_built_in_callbacks_come_from_the_config(tmp_path):
  """early_stopping_patience in the config: trainer adds the callback."""
  strategy = make_strategy(1)
  train, held_out = _digits_sources()
  config = _config(str(tmp_path / "run"), train_steps=200, eval_every=5,
                   learning_rate=0.0, early_stopping_patience=1)
  result = trainer.fit(strategy=strategy,
                       model=_built_in_model(strategy, config),
                       train_data=train, eval_data=held_out, config=config)
  assert result.step == 10  # No improvement at a learning rate of 0.


def test_callbacks_that_would_mislead_are_refused_before_fit(tmp_path):
  strategy = make_strategy(1)
  config = _config(str(tmp_path / "run"))
  model = _built_in_model(strategy, config)
  with pytest.raises(ValueError, match="monitors 'val_loss'"):
    trainer.check_callbacks(model, [keras.callbacks.EarlyStopping()],
                            config=config, has_eval_data=False)
  trainer.check_callbacks(model, [keras.callbacks.EarlyStopping()],
                          config=config, has_eval_data=True)
  assert not (tmp_path / "run").exists()


def test_an_unknown_progress_mode_is_refused(tmp_path):
  from trainer import writers  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match="progress must be one of bar, log"):
    writers.build_writer(model_dir=str(tmp_path), is_writer=True,
                         history=None, train_steps=10, progress="auto")
  assert not list(tmp_path.iterdir())  # Refused before any file.
