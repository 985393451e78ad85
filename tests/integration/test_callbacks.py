"""Keras callbacks under `launch.fit`: honoured with Keras's meaning, or
refused before training; Ctrl-C and KeyboardInterrupt save and resume."""

import os
import re
import signal
import threading

import keras
import numpy as np
import pytest

from datasets import from_arrays
from launch import fit
from launch.errors import ConfigError

_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(320, 6)).astype("float32")
_Y = (_X[:, 0] + 0.5 * _X[:, 1] > 0).astype("int64")
TRAIN, EVAL = from_arrays(_X[:256], _Y[:256]), from_arrays(_X[256:], _Y[256:])
_OPTIONS = dict(global_batch_size=32, steps_per_loop=5, eval_every=10,
                checkpoint_every=0, cpu_devices=2, progress="none",
                deterministic=True, seed=3)


def compiled_sgd():
  model = keras.Sequential([keras.Input((6,)),
                            keras.layers.Dense(8, activation="relu"),
                            keras.layers.Dense(2)])
  model.compile(optimizer=keras.optimizers.SGD(0.2),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True), metrics=["accuracy"])
  return model


def compiled_with_schedule():
  model = compiled_sgd()
  model.compile(optimizer=keras.optimizers.SGD(
      keras.optimizers.schedules.CosineDecay(0.2, decay_steps=100)),
                loss=model.loss, metrics=["accuracy"])
  return model


def network():
  """Uncompiled: the harness wraps it with its loss and optimizer."""
  return keras.Sequential([keras.Input((6,)),
                           keras.layers.Dense(8, activation="relu"),
                           keras.layers.Dense(2)])


def halve_each_epoch():
  # Relative to the current rate, as Keras's own example: applying it twice
  # in one epoch (a resume inside the epoch) would show.
  return keras.callbacks.LearningRateScheduler(
      lambda epoch, rate: rate * 0.5 if epoch else rate)


def run(model_dir, callbacks=(), model_fn=compiled_sgd, **options):
  return fit(model_fn, TRAIN, eval_data=EVAL, model_dir=str(model_dir),
             callbacks=list(callbacks), **{**_OPTIONS, **options})


def rates(result):
  return [(row["step"], row["learning_rate"]) for row in result.history
          if row["split"] == "train"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  return run(tmp_path_factory.mktemp("straight"), [halve_each_epoch()],
             train_steps=40)


class SendsCtrlC(keras.callbacks.Callback):
  """Presses Ctrl-C (SIGINT to this process) after a given batch."""

  def __init__(self, epoch, batch, presses=1):
    super().__init__()
    self.at, self.presses = (epoch, batch), presses
    self.epoch = None

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if (self.epoch, batch) == self.at:
      for _ in range(self.presses):
        os.kill(os.getpid(), signal.SIGINT)


class RaisesInterrupt(keras.callbacks.Callback):

  def on_epoch_end(self, epoch, logs=None):
    if epoch == 1:
      raise KeyboardInterrupt


@pytest.mark.parametrize("interrupter, saved_step", [
    (SendsCtrlC(epoch=1, batch=4), 15),  # Inside epoch 1: LR set once.
    (RaisesInterrupt(), 20),
])
@pytest.mark.slow
def test_an_interrupted_fit_saves_and_the_next_resumes_exactly(
    tmp_path, capsys, straight, interrupter, saved_step):
  with pytest.raises(KeyboardInterrupt):
    run(tmp_path, [halve_each_epoch(), interrupter], train_steps=40)
  checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
  assert f"ckpt-{saved_step}.index" in checkpoints
  assert not any(name.startswith("ckpt-40") for name in checkpoints)
  capsys.readouterr()
  resumed = run(tmp_path, [halve_each_epoch()], train_steps=40)
  assert f"Resuming from step {saved_step} of 40" in capsys.readouterr().err
  assert resumed.step == 40
  assert rates(resumed) == [row for row in rates(straight)
                            if row[0] > saved_step]
  for got, want in zip(resumed.model.get_weights(),
                       straight.model.get_weights()):
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.slow
def test_ctrl_c_from_another_thread_while_a_loop_runs(tmp_path, capsys):
  """The signal lands while TensorFlow runs a loop, as a person's would."""
  started = threading.Event()
  presser = threading.Thread(target=lambda: started.wait(60) and os.kill(
      os.getpid(), signal.SIGINT))
  presser.start()
  options = dict(train_steps=2000, steps_per_loop=20, eval_every=0)
  with pytest.raises(KeyboardInterrupt, match="a checkpoint of that step"
                     " was saved") as raised:
    run(tmp_path, [keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: started.set())], **options)
  presser.join()
  step = int(re.search(r"interrupted at step (\d+)", str(raised.value))[1])
  assert 0 < step < 2000 and step % 20 == 0
  assert os.listdir(tmp_path / "checkpoints").count(f"ckpt-{step}.index") == 1
  capsys.readouterr()
  assert run(tmp_path, **options).step == 2000
  assert f"Resuming from step {step} of 2000" in capsys.readouterr().err


def test_a_second_ctrl_c_stops_at_once_without_saving(tmp_path):
  with pytest.raises(KeyboardInterrupt):
    run(tmp_path, [SendsCtrlC(epoch=1, batch=4, presses=2)], train_steps=40)
  assert not (tmp_path / "checkpoints").exists() or not [
      name for name in os.listdir(tmp_path / "checkpoints")
      if name.endswith(".index")]


@pytest.mark.slow
def test_learning_rate_callbacks_take_effect(tmp_path):
  weights_at_epoch_end = []
  record = keras.callbacks.LambdaCallback(
      on_epoch_end=lambda epoch, logs: weights_at_epoch_end.append(
          [w.copy() for w in record.model.get_weights()]))
  frozen = keras.callbacks.LearningRateScheduler(
      lambda epoch, rate: 0.0 if epoch >= 1 else rate)
  result = run(tmp_path / "frozen", [frozen, record], train_steps=30)
  assert [rate for _, rate in rates(result)] == pytest.approx(
      [0.2, 0.2, 0.0, 0.0, 0.0, 0.0])
  for first, last in zip(weights_at_epoch_end[0], weights_at_epoch_end[-1]):
    np.testing.assert_array_equal(first, last)  # SGD at rate 0 stands still.
  plateau = keras.callbacks.ReduceLROnPlateau(
      monitor="val_loss", mode="max", patience=0, factor=0.5)  # Every epoch.
  result = run(tmp_path / "plateau", [plateau], model_fn=network,
               optimizer="sgd", learning_rate=0.1, train_steps=30)
  # Epoch 0 sets the best; epoch 1 (step 20) reduces; epoch 2 ends the run.
  assert [rate for _, rate in rates(result)] == pytest.approx(
      [0.1] * 4 + [0.05] * 2)


@pytest.mark.parametrize("patience, last_step", [
    (1, 20),  # An early stop.
    (100, 30),  # No stop: Keras restores the best weights at the end too.
])
@pytest.mark.slow
def test_restored_best_weights_are_the_logs_checkpoint_and_export(
    tmp_path, patience, last_step):
  # mode="max" on a falling loss: the first evaluation stays the best.
  stopper = keras.callbacks.EarlyStopping(
      monitor="val_loss", mode="max", patience=patience,
      restore_best_weights=True)
  result = run(tmp_path, [stopper], train_steps=30)
  evals = [row for row in result.history if row["split"] == "eval"]
  assert [row["step"] for row in evals] == list(range(10, last_step + 1, 10))
  assert result.step == last_step
  assert result.logs["loss"] == pytest.approx(evals[0]["loss"], abs=1e-6)
  loss, accuracy = result.model.evaluate(_X[256:], _Y[256:], verbose=0)
  assert result.logs["loss"] == pytest.approx(loss, abs=1e-5)
  assert result.logs["accuracy"] == pytest.approx(accuracy, abs=1e-6)
  exported = keras.models.load_model(tmp_path / "export" / "model.keras",
                                     compile=False)
  again = run(tmp_path, train_steps=last_step)  # The final checkpoint.
  for model in (exported, again.model):
    for got, want in zip(model.get_weights(), result.model.get_weights()):
      np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_the_harness_restore_best_weights_agrees_too(tmp_path):
  result = run(tmp_path, model_fn=network, train_steps=60,
               early_stopping_patience=1, restore_best_weights=True,
               monitor="loss", monitor_mode="max")
  evals = [row for row in result.history if row["split"] == "eval"]
  assert result.step == 20
  assert result.logs["loss"] == pytest.approx(evals[0]["loss"], abs=1e-6)
  again = run(tmp_path, model_fn=network, train_steps=20,
              early_stopping_patience=1, restore_best_weights=True,
              monitor="loss", monitor_mode="max")
  for got, want in zip(again.model.get_weights(), result.model.get_weights()):
    np.testing.assert_array_equal(got, want)
  assert again.logs["loss"] == pytest.approx(result.logs["loss"], abs=1e-6)


class Recorder(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.batches, self.params_seen, self.epochs = [], None, []

  def on_train_begin(self, logs=None):
    self.params_seen = dict(self.params)

  def on_train_batch_end(self, batch, logs=None):
    self.batches.append(batch)

  def on_epoch_end(self, epoch, logs=None):
    self.epochs.append(epoch)
    if epoch == 1:
      self.model.stop_training = True


@pytest.mark.slow
def test_model_checkpoint_and_a_custom_callback_keep_keras_meaning(tmp_path):
  recorder, history = Recorder(), keras.callbacks.History()
  callbacks = [
      recorder, history,
      # Nothing listens there: Keras warns and training goes on.
      keras.callbacks.RemoteMonitor(root="http://127.0.0.1:9"),
      keras.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.keras")),
      keras.callbacks.ModelCheckpoint(
          str(tmp_path / "best.weights.h5"), save_weights_only=True,
          save_best_only=True, monitor="val_accuracy"),
      keras.callbacks.ModelCheckpoint(str(tmp_path / "b-{batch}.keras"),
                                      save_freq=10),
  ]
  result = run(tmp_path / "run", callbacks, model_fn=network, train_steps=60)
  assert recorder.params_seen == {"verbose": 0, "epochs": 6, "steps": 10}
  assert recorder.batches == [4, 9, 4, 9]  # Index in the epoch, per loop.
  assert recorder.epochs == [0, 1] and result.step == 20
  assert history.epoch == [0, 1] and len(history.history["val_loss"]) == 2
  # Your network itself (not the harness's wrapper), loadable as Keras does.
  saved = keras.models.load_model(tmp_path / "m-2.keras", compile=False)
  np.testing.assert_allclose(saved.predict(_X[:8], verbose=0),
                             result.model.predict(_X[:8], verbose=0),
                             atol=1e-6)
  assert sorted(name for name in os.listdir(tmp_path)
                if name.endswith((".keras", ".h5"))) == [
                    "b-10.keras", "best.weights.h5", "m-1.keras",
                    "m-2.keras"]
  network_copy = network()
  network_copy.load_weights(tmp_path / "best.weights.h5")


@pytest.mark.parametrize("callback, options, message", [
    (keras.callbacks.BackupAndRestore("/tmp/unused-backup"), {},
     "BackupAndRestore is not supported: it duplicates the harness's own"
     " resume"),
    (keras.callbacks.ProgbarLogger(), {}, "ProgbarLogger is not supported"),
    (keras.callbacks.SwapEMAWeights(), {}, "SwapEMAWeights is not supported"),
    (keras.callbacks.ModelCheckpoint("/tmp/unused.keras", save_freq=7), {},
     "save_freq=7) saves every 7 batches"),
    (keras.callbacks.TensorBoard("/tmp/unused-tb", update_freq=3), {},
     "update_freq=3) counts one batch per call"),
    (keras.callbacks.TensorBoard("/tmp/unused-tb", profile_batch=(2, 4)), {},
     "use the profile_steps option"),
    (keras.callbacks.EarlyStopping(), dict(eval_data=None),
     "monitors 'val_loss', but this run evaluates no data"),
    (keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy"),
     dict(model_fn=network, lr_schedule="warmup_cosine"),
     "sets the optimizer's learning rate, but it is a schedule"),
    (keras.callbacks.EarlyStopping(monitor="val_width"), {},
     "cannot tell whether that value should go up or down"),
    (keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate),
     dict(model_fn=lambda: compiled_with_schedule()),
     "sets the optimizer's learning rate, but it is a schedule"),
    (keras.callbacks.EarlyStopping, {},
     "callbacks holds the class EarlyStopping; pass an instance,"
     " EarlyStopping(...)"),
    (print, {}, "callbacks holds a builtin_function_or_method, not a"
     " keras.callbacks.Callback"),
    (None, dict(model_fn=lambda: compiled_with_schedule(),
                plateau_patience=2),
     "plateau_patience sets the learning rate, but the compiled optimizer's"
     " is a schedule"),
])
def test_callbacks_that_would_mean_something_else_are_refused(
    tmp_path, callback, options, message):
  options = {"eval_data": EVAL, "model_fn": compiled_sgd, **options}
  with pytest.raises(ConfigError) as raised:
    fit(options.pop("model_fn"), TRAIN, model_dir=str(tmp_path / "m"),
        callbacks=[callback] if callback else [], train_steps=20,
        **{**_OPTIONS, **options})
  assert message in str(raised.value)
  assert len(str(raised.value).splitlines()) == 1
  assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("options, stop_step", [
    (dict(patience=2), 30),
    (dict(patience=2, baseline=100.0), 20),  # Never beats the baseline.
    (dict(patience=0, start_from_epoch=2), 40),  # Watches from epoch 2 on.
])
@pytest.mark.slow
def test_early_stopping_baseline_and_start_from_epoch(tmp_path, options,
                                                     stop_step):
  # mode="max" on a falling loss: no epoch after the first improves.
  stopper = keras.callbacks.EarlyStopping(monitor="val_loss", mode="max",
                                          **options)
  result = run(tmp_path, [stopper], train_steps=80)
  assert result.step == stop_step


class StopsInsideAnEpoch(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.epoch_logs, self.epoch = [], None

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    if (self.epoch, batch) == (1, 4):
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    self.epoch_logs.append((epoch, sorted(logs)))


def test_a_stop_inside_an_epoch_evaluates_and_ends_it(tmp_path):
  stopper = StopsInsideAnEpoch()
  log = tmp_path / "log.csv"
  result = run(tmp_path / "run", [stopper, keras.callbacks.CSVLogger(str(log))],
               train_steps=40)
  assert result.step == 15
  assert [epoch for epoch, _ in stopper.epoch_logs] == [0, 1]
  assert "val_loss" in stopper.epoch_logs[-1][1]
  assert len(log.read_text().splitlines()) == 3  # Header and two epochs.
  assert (tmp_path / "run" / "checkpoints" / "ckpt-15.index").exists()


@pytest.mark.parametrize("model_fn", [compiled_sgd, network])
def test_auto_mode_knows_which_way_accuracy_goes(tmp_path, model_fn):
  stopper = keras.callbacks.EarlyStopping(monitor="val_accuracy",
                                          patience=100)
  run(tmp_path, [stopper], model_fn=model_fn, train_steps=20)
  assert stopper.monitor_op is keras.ops.greater
  assert stopper.best is not None


@pytest.mark.slow
def test_an_ema_optimizer_ends_with_its_averages_as_keras_fit(tmp_path):
  def model_fn(**optimizer):
    model = compiled_sgd()
    model.compile(optimizer=keras.optimizers.SGD(0.2, **optimizer),
                  loss=model.loss, metrics=["accuracy"])
    return model

  # Momentum 1: the average keeps the weights after the first step.
  ema = run(tmp_path / "ema", model_fn=lambda: model_fn(
      use_ema=True, ema_momentum=1.0), train_steps=20)
  one_step = run(tmp_path / "one", model_fn=model_fn, train_steps=1,
                 steps_per_loop=1, eval_every=0)
  exported = keras.models.load_model(tmp_path / "ema" / "export" /
                                     "model.keras", compile=False)
  for model in (ema.model, exported):
    for got, want in zip(model.get_weights(), one_step.model.get_weights()):
      np.testing.assert_allclose(got, want, atol=1e-7)
  loss, _ = ema.model.evaluate(_X[256:], _Y[256:], verbose=0)
  assert ema.logs["loss"] == pytest.approx(loss, abs=1e-5)
