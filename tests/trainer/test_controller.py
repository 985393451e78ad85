import math

import pytest

from trainer import controller as controller_lib
from trainer import writers


class FakeRunner:
  can_evaluate = True

  def __init__(self, losses=None):
    self.train_calls = []
    self.eval_calls = 0
    self._losses = list(losses or [])

  def train(self, num_steps):
    self.train_calls.append(num_steps)
    loss = self._losses.pop(0) if self._losses else 1.0
    return {"loss": loss, "learning_rate": 0.1}

  def evaluate(self, progress=None):
    self.eval_calls += 1
    return {"loss": 0.5, "accuracy": 0.9, "examples": 37}


class FakeCheckpointer:

  def __init__(self):
    self.saved = []

  def save(self, step):
    self.saved.append(step)


class RecordingWriter(writers.MetricWriter):

  def __init__(self):
    self.records = []

  def write(self, split, step, scalars):
    self.records.append((split, step, dict(scalars)))


class FakeClock:
  """Each train loop takes exactly 2 seconds."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    self.now += 1.0
    return self.now


def make_controller(runner, callbacks=(), **config):
  checkpointer, writer = FakeCheckpointer(), RecordingWriter()
  config.setdefault("global_batch_size", 8)
  controller = controller_lib.Controller(runner=runner, checkpointer=checkpointer,
                               writer=writer, config=controller_lib.LoopConfig(**config),
                               clock=FakeClock(), callbacks=callbacks)
  return controller, checkpointer, writer


def test_loops_land_on_every_eval_and_checkpoint_boundary():
  runner = FakeRunner()
  controller, checkpointer, writer = make_controller(
      runner, train_steps=100, steps_per_loop=30, eval_every=50,
      checkpoint_every=40)
  final = controller.run(0)
  assert runner.train_calls == [30, 10, 10, 30, 20]
  assert checkpointer.saved == [40, 80, 100]
  assert [step for split, step, _ in writer.records if split == "eval"] == [
      50, 100]
  assert final["examples"] == 37


def test_rates_come_from_the_clock():
  controller, _, writer = make_controller(FakeRunner(), train_steps=10,
                                          steps_per_loop=5)
  controller.run(0)
  split, step, scalars = writer.records[0]
  assert (split, step) == ("train", 5)
  assert scalars["steps_per_sec"] == pytest.approx(5.0)  # 5 steps in 1 s.
  assert scalars["examples_per_sec"] == pytest.approx(40.0)


def test_resume_continues_from_the_start_step_and_saves_the_end():
  runner = FakeRunner()
  controller, checkpointer, _ = make_controller(
      runner, train_steps=100, steps_per_loop=50, checkpoint_every=60)
  controller.run(60)
  assert runner.train_calls == [40]
  assert checkpointer.saved == [100]


def test_run_at_the_final_step_only_evaluates():
  runner = FakeRunner()
  controller, checkpointer, _ = make_controller(runner, train_steps=100,
                                                steps_per_loop=50)
  assert controller.run(100)["accuracy"] == 0.9
  assert runner.train_calls == [] and checkpointer.saved == []


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_before_any_checkpoint(bad):
  runner = FakeRunner(losses=[1.0, bad])
  controller, checkpointer, _ = make_controller(
      runner, train_steps=100, steps_per_loop=10, checkpoint_every=20)
  with pytest.raises(controller_lib.NonFiniteLossError, match="up to 20"):
    controller.run(0)
  assert checkpointer.saved == []


class MarkingRunner(FakeRunner):
  """Records which loops ran step by step for the profiler."""

  def __init__(self):
    super().__init__()
    self.marked = []

  def train(self, num_steps, marked_from=None):
    if marked_from is not None:
      self.marked.append((marked_from, num_steps))
    return super().train(num_steps)


def test_profiled_steps_run_one_by_one_on_every_worker():
  # No profile_dir: a worker that writes no trace. It must still run the
  # same function as the chief, or their collectives would not match.
  runner = MarkingRunner()
  controller, _, _ = make_controller(
      runner, train_steps=100, steps_per_loop=20, eval_every=50,
      profile_steps=(21, 60))
  controller.run(0)
  assert runner.marked == [(20, 20), (40, 10), (50, 10)]
  assert sum(runner.train_calls) == 100


class FakeRecovery:
  """Rolls back to `restored` while retries last; weights always finite."""

  def __init__(self, max_retries, restored=0):
    self.max_retries, self.restored = max_retries, restored
    self.records = []

  def weights_are_finite(self):
    return True

  def roll_back(self, nan_step, loss):
    from trainer import recovery as recovery_lib
    if len(self.records) >= self.max_retries:
      return None
    self.records.append({"nan_step": nan_step, "restored_step": self.restored,
                         "learning_rate_after": 0.5 ** (len(self.records)
                                                        + 1)})
    return recovery_lib.Rollback(len(self.records), self.max_retries,
                                 nan_step, self.restored, loss, 1.0, 0.5)


def test_default_non_finite_stop_names_the_fix():
  runner = FakeRunner(losses=[math.nan])
  controller, _, _ = make_controller(runner, train_steps=30,
                                     steps_per_loop=10)
  with pytest.raises(controller_lib.NonFiniteLossError,
                     match="lower the learning rate, or set nan_retries"):
    controller.run(0)


def test_a_rollback_trains_again_from_the_restored_step():
  runner = FakeRunner(losses=[1.0, 1.0, math.nan, 1.0, 1.0, 1.0, 1.0])
  checkpointer, writer = FakeCheckpointer(), RecordingWriter()
  controller = controller_lib.Controller(
      runner=runner, checkpointer=checkpointer, writer=writer,
      config=controller_lib.LoopConfig(train_steps=50, steps_per_loop=10,
                                       checkpoint_every=20),
      clock=FakeClock(), recovery=FakeRecovery(3, restored=20))
  controller.run(0)
  # 0 saved first (a NaN before the first checkpoint has a step to go to).
  assert checkpointer.saved == [0, 20, 40, 50]
  steps = [(split, step) for split, step, _ in writer.records]
  assert ("recovery", 30) in steps
  after = steps[steps.index(("recovery", 30)) + 1:]
  assert after[0] == ("train", 30)  # Loop 20..30 again.
  assert sum(runner.train_calls) == 60


def test_retries_used_up_raise_with_what_was_tried():
  runner = FakeRunner(losses=[math.nan] * 5)
  checkpointer, writer = FakeCheckpointer(), RecordingWriter()
  controller = controller_lib.Controller(
      runner=runner, checkpointer=checkpointer, writer=writer,
      config=controller_lib.LoopConfig(train_steps=50, steps_per_loop=10),
      clock=FakeClock(), recovery=FakeRecovery(2))
  with pytest.raises(controller_lib.NonFiniteLossError,
                     match="up to 10 again after 2 rollback.*inf or NaN"):
    controller.run(0)
  assert [split for split, _, _ in writer.records] == ["recovery"] * 2
