"""The loop's callbacks: early stopping, plateau, best checkpoint, your own."""

import keras
import numpy as np
import pytest

from tests.trainer.test_controller import FakeRunner, make_controller
from trainer import callbacks


def small_model():
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.optimizer = keras.optimizers.SGD(0.1)
  model.optimizer.build(model.trainable_variables)
  return model


@pytest.mark.parametrize("monitor,expected", [("loss", "min"),
                                              ("accuracy", "max"),
                                              ("auc", "max"), ("mse", "min")])
def test_auto_mode(monitor, expected):
  assert callbacks._Monitor(monitor, "auto").mode == expected


def test_early_stopping_waits_for_patience_and_restores_the_best():
  model = small_model()
  stopper = callbacks.EarlyStopping(model=model, monitor="loss", patience=2,
                                  restore_best_weights=True)
  weights = {}
  for step, loss in ((10, 1.0), (20, 0.5), (30, 0.7), (40, 0.6)):
    model.layers[0].kernel.assign(np.full((2, 1), float(step)))
    weights[step] = model.get_weights()
    stopped = stopper.on_eval_end(step, {"loss": loss})
    assert stopped == (step == 40)
  assert stopper.stopped_at == 40
  # Restored at the end, so the controller saves and evaluates them again.
  np.testing.assert_array_equal(model.get_weights()[0], weights[40][0])
  assert stopper.on_train_end(40, {}) is True
  np.testing.assert_array_equal(model.get_weights()[0], weights[20][0])


def test_early_stopping_restores_nothing_without_a_stop():
  model = small_model()
  stopper = callbacks.EarlyStopping(model=model, monitor="loss", patience=5,
                                  restore_best_weights=True)
  stopper.on_eval_end(10, {"loss": 1.0})
  assert stopper.on_train_end(10, {}) is False


def test_monitor_must_be_in_the_logs():
  stopper = callbacks.EarlyStopping(model=small_model(), monitor="auc")
  with pytest.raises(KeyError, match="'auc' is not in the eval logs"):
    stopper.on_eval_end(10, {"loss": 1.0})


def test_plateau_halves_the_rate_down_to_the_floor():
  model = small_model()
  plateau = callbacks.ReduceLROnPlateau(optimizer=model.optimizer,
                                      monitor="accuracy", factor=0.5,
                                      patience=1, min_lr=0.03)
  rates = []
  for accuracy in (0.5, 0.5, 0.5, 0.5, 0.6):
    plateau.on_eval_end(0, {"accuracy": accuracy})
    rates.append(float(np.array(model.optimizer.learning_rate)))
  assert rates == pytest.approx([0.1, 0.05, 0.03, 0.03, 0.03])


class Saves:

  def __init__(self):
    self.steps = []

  def save(self, step):
    self.steps.append(step)


def test_best_checkpoint_saves_only_on_improvement():
  saver = Saves()
  best = callbacks.BestCheckpoint(checkpointer=saver, monitor="accuracy")
  for step, accuracy in ((10, 0.5), (20, 0.7), (30, 0.6), (40, 0.8)):
    best.on_eval_end(step, {"accuracy": accuracy})
  assert saver.steps == [10, 20, 40]


class StopAfter(callbacks.Callback):
  """A user's callback: records every call, stops after a given train loop."""

  def __init__(self, stop_step):
    self.stop_step, self.calls = stop_step, []

  def on_train_loop_end(self, step, logs):
    self.calls.append(("train", step, logs["loss"]))
    return step >= self.stop_step

  def on_eval_end(self, step, logs):
    self.calls.append(("eval", step, logs["accuracy"]))


def test_controller_calls_callbacks_and_stops_early_with_a_checkpoint():
  hook = StopAfter(30)
  runner = FakeRunner()
  controller, checkpointer, _ = make_controller(
      runner, callbacks=[hook], train_steps=100, steps_per_loop=10,
      eval_every=20, checkpoint_every=50)
  logs = controller.run(0)
  assert controller.last_step == 30
  assert checkpointer.saved == [30]
  # The stop between evaluations evaluates and ends the epoch (Keras's fit).
  assert hook.calls == [("train", 10, 1.0), ("train", 20, 1.0),
                        ("eval", 20, 0.9), ("train", 30, 1.0),
                        ("eval", 30, 0.9)]
  assert logs["examples"] == 37  # The final evaluation at the stop step.


class Restorer(callbacks.Callback):
  """Changes the weights at the end, as restore_best_weights does."""

  def on_train_end(self, step, logs):
    return True


def test_weights_changed_at_the_end_are_saved_and_evaluated_again():
  runner = FakeRunner()
  controller, checkpointer, _ = make_controller(
      runner, callbacks=[Restorer()], train_steps=40, steps_per_loop=10,
      eval_every=20)
  controller.run(0)
  assert checkpointer.saved == [40, 40]
  assert runner.eval_calls == 3  # At 20, at 40, and of the restored ones.


class Interrupter(callbacks.Callback):

  def __init__(self, method, step):
    self.method, self.step = method, step

  def on_train_loop_end(self, step, logs):
    if self.method == "loop" and step == self.step:
      raise KeyboardInterrupt("from a callback")

  def on_eval_end(self, step, logs):
    if self.method == "eval" and step == self.step:
      raise KeyboardInterrupt("from a callback")


@pytest.mark.parametrize("method,step", [("loop", 30), ("eval", 20),
                                         ("loop", 40)])
def test_a_keyboard_interrupt_from_a_callback_saves_first(method, step):
  runner = FakeRunner()
  controller, checkpointer, _ = make_controller(
      runner, callbacks=[Interrupter(method, step)], train_steps=40,
      steps_per_loop=10, eval_every=20, checkpoint_every=0)
  with pytest.raises(KeyboardInterrupt, match="from a callback"):
    controller.run(0)
  assert checkpointer.saved == [step]
  assert controller.last_step == step


def test_a_stop_signal_during_an_evaluation_stops_without_another_loop():
  from trainer import controller as controller_lib  # pylint: disable=import-outside-toplevel
  runner = FakeRunner()
  controller, checkpointer, _ = make_controller(
      runner, train_steps=100, steps_per_loop=10, eval_every=20)
  controller._stop_requested = lambda: runner.eval_calls > 0
  with pytest.raises(controller_lib.StopRequested):
    controller.run(0)
  assert runner.train_calls == [10, 10]
  assert checkpointer.saved == [20]


def test_the_old_name_action_is_the_callback_class_with_a_warning():
  from trainer import actions  # pylint: disable=import-outside-toplevel
  with pytest.warns(DeprecationWarning, match="trainer.callbacks.Callback"):
    assert actions.Action is callbacks.Callback
  with pytest.warns(DeprecationWarning):
    assert actions.EarlyStopping is callbacks.EarlyStopping
  with pytest.raises(AttributeError):
    actions.NoSuchThing  # pylint: disable=pointless-statement


def _divergence_warnings(caplog, losses, chance_loss=None):
  from trainer import callbacks as callbacks_lib
  warning = callbacks_lib.DivergenceWarning(chance_loss=chance_loss)
  for index, loss in enumerate(losses):
    warning.on_train_loop_end(10 * (index + 1), {"loss": loss})
  caplog.clear()
  with caplog.at_level("WARNING"):
    warning.on_train_end(10 * len(losses), {})
  return [r.getMessage() for r in caplog.records if "diverged" in
          r.getMessage()]


def test_divergence_warning_only_when_the_loss_ends_far_above(caplog):
  # Exploded within the first loop: above a uniform guess's 2.30.
  assert _divergence_warnings(caplog, [8.8e11, 2624.0, 1765.0],
                              chance_loss=2.302585)
  assert _divergence_warnings(caplog, [0.5, 0.4, 1.2])  # 2.4x the start.
  # Exploded, then collapsed to chance (dead units): as bad.
  assert _divergence_warnings(caplog, [112.9, 3.6, 2.46],
                              chance_loss=2.302585)
  # Random labels: at chance from the start, no explosion: quiet.
  assert not _divergence_warnings(caplog, [2.35, 2.31, 2.31],
                                  chance_loss=2.302585)
  for quiet in ([2.3, 0.5, 0.1], [0.001, 0.0015],  # 1.5x: noise.
                [-1.0, -0.5, 2.0],  # Negative losses are never compared.
                [2.3]):  # One loop.
    assert not _divergence_warnings(caplog, quiet, chance_loss=None)
