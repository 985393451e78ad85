"""Chaos: workers SIGKILLed at random steps lose nothing under --deterministic.

`python -m launch.local --workers=2 --max_restarts=3 --deterministic` has one
of its workers SIGKILLed at 3 random steps. Each time the supervisor restarts
the group, which resumes from the newest checkpoint and recomputes the steps
after it. The run must end as an uninterrupted one does: the same final
checkpoint bit for bit, the same loss in every logged loop (recomputed ones
included), the final step and evaluation in metrics.jsonl.

The kill steps come from a seeded `random.Random`; the seed and the kills
are in every assertion message, and `CHAOS_SEED=N pytest ...` replays them.
"""

import json
import os
import random
import re
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import checkpoints
from tests.processes import Supervisor

pytestmark = pytest.mark.slow

TRAIN_STEPS = 600
STEPS_PER_LOOP = 25
CHECKPOINT_EVERY = 100
MAX_RESTARTS = 3
FLAGS = ["--workers=2", "--deterministic", f"--train_steps={TRAIN_STEPS}",
         f"--steps_per_loop={STEPS_PER_LOOP}",
         f"--checkpoint_every={CHECKPOINT_EVERY}"]
# One kill in each window (loop boundaries, inclusive). The first may come
# before any checkpoint (everything is recomputed); the later ones always
# find one; none is so late that the run could finish before it lands.
KILL_WINDOWS = ((25, 175), (200, 350), (375, 550))


def attempt_pids(supervisor: Supervisor, attempt: int) -> dict[int, int] | None:
  """Pid by worker index of the group's `attempt`-th start, once printed."""
  started = supervisor.started_pids()[2 * attempt:2 * attempt + 2]
  return dict(started) if len(started) == 2 else None


@pytest.fixture
def supervise(tmp_path):
  started = []

  def start(name: str, args: list[str]) -> Supervisor:
    supervisor = Supervisor([*args, f"--model_dir={tmp_path / name}"],
                            tmp_path / f"{name}.out")
    started.append(supervisor)
    return supervisor

  yield start
  for supervisor in started:
    supervisor.kill()


def draw_kill_steps(rng: random.Random) -> list[int]:
  """One loop boundary per window, at least one between two checkpoints."""
  while True:
    steps = [rng.randrange(first, last + 1, STEPS_PER_LOOP)
             for first, last in KILL_WINDOWS]
    if any(step % CHECKPOINT_EVERY for step in steps[1:]):
      return steps


def read_heartbeat(path) -> tuple[int, float]:
  """(step, unix time) a worker last reported; (-1, 0) before the first."""
  try:
    step, written = path.read_text(encoding="utf-8").split()
  except (FileNotFoundError, ValueError):
    return -1, 0.0
  return int(step), float(written)


def step_reached(heartbeat, step: int, *, since: float) -> int:
  """The step a heartbeat written after `since` reports if >= `step`, else 0."""
  reported, written = read_heartbeat(heartbeat)
  return reported if written > since and reported >= step else 0


def wait_until(condition, supervisor: Supervisor, what: str, context: str,
               timeout: float = 120):
  """Polls `condition()` until it returns something true; returns that."""
  deadline = time.monotonic() + timeout
  while True:
    value = condition()
    if value:
      return value
    assert supervisor.process.poll() is None, (
        f"{context}: the supervisor exited ({supervisor.process.returncode})"
        f" while waiting for {what}:\n{supervisor.output[-3000:]}")
    assert time.monotonic() < deadline, (
        f"{context}: no {what} after {timeout} s:\n"
        f"{supervisor.output[-3000:]}")
    time.sleep(0.02)


def kill_at_steps(supervisor: Supervisor, model_dir, kill_steps: list[int],
                  rng: random.Random, context: str) -> list[dict]:
  """SIGKILLs a random worker of each attempt once it passes its step.

  Returns:
    One record per kill: the step the chief had reported, the victim.
  """
  heartbeat = model_dir / "logs" / "worker-0.heartbeat"
  kills, attempt_began = [], time.time()
  for attempt, kill_step in enumerate(kill_steps):
    if attempt:
      # Printed after every worker of the previous attempt has exited, so
      # heartbeats written later than this are the new attempt's.
      wait_until(lambda: f"restarting the group ({attempt} of" in
                 supervisor.output, supervisor, f"restart {attempt}", context)
      attempt_began = time.time()
    pids = wait_until(lambda: attempt_pids(supervisor, attempt), supervisor,
                      f"the workers of attempt {attempt + 1}", context)
    step = wait_until(
        lambda: step_reached(heartbeat, kill_step, since=attempt_began),
        supervisor, f"step {kill_step}", context)
    victim = rng.randrange(2)
    os.kill(pids[victim], signal.SIGKILL)
    kills.append({"step": step, "worker": victim})
  return kills


def resumed_steps(output: str) -> list[int]:
  """The step each restarted group resumed from (0: from scratch)."""
  steps = []
  for attempt in re.split(r"restarting the group \(\d of \d\)", output)[1:]:
    restored = re.search(r"\[worker:0\] .* Restored \S+ at step (\d+)\.",
                         attempt)
    steps.append(int(restored.group(1)) if restored else 0)
  return steps


def metrics(model_dir, split: str) -> list[dict]:
  with open(model_dir / "metrics.jsonl", encoding="utf-8") as stream:
    rows = [json.loads(line) for line in stream]
  return [row for row in rows if row["split"] == split]


def checkpoint_tensors(model_dir) -> dict[str, np.ndarray]:
  """Every variable of the newest checkpoint, by its name in the file."""
  reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def assert_same_checkpoint(reference_dir, chaos_dir, context: str) -> None:
  """Bitwise: every tensor of the final checkpoints, and restored weights."""
  expected = checkpoint_tensors(reference_dir)
  actual = checkpoint_tensors(chaos_dir)
  assert sorted(actual) == sorted(expected), context
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value,
                                  err_msg=f"{context}: {name}")
  for expected_weight, actual_weight in zip(
      checkpoints.restored_weights(reference_dir / "checkpoints",
                                   expected_step=TRAIN_STEPS),
      checkpoints.restored_weights(chaos_dir / "checkpoints",
                                   expected_step=TRAIN_STEPS), strict=True):
    np.testing.assert_array_equal(actual_weight, expected_weight,
                                  err_msg=context)


def assert_same_metrics(reference_dir, chaos_dir, context: str) -> None:
  """Every loop logged, recomputed ones too, has the reference's loss."""
  reference_loss = {row["step"]: row["loss"]
                    for row in metrics(reference_dir, "train")}
  train = metrics(chaos_dir, "train")
  steps = [row["step"] for row in train]
  assert len(steps) > len(set(steps)), f"{context}: nothing was recomputed"
  assert steps[-1] == TRAIN_STEPS, f"{context}: {steps}"
  for row in train:
    assert row["loss"] == reference_loss[row["step"]], f"{context}: {row}"
  final_eval = metrics(chaos_dir, "eval")[-1]
  assert final_eval["step"] == TRAIN_STEPS, f"{context}: {final_eval}"
  assert final_eval["loss"] == metrics(reference_dir, "eval")[-1]["loss"], (
      f"{context}: {final_eval}")


def test_random_sigkills_end_bitwise_equal_to_an_uninterrupted_run(
    tmp_path, supervise):
  seed = int(os.environ.get("CHAOS_SEED", random.randrange(2**32)))
  rng = random.Random(seed)
  kill_steps = draw_kill_steps(rng)
  context = f"CHAOS_SEED={seed}, kills after steps {kill_steps}"
  print(context)

  reference = supervise("reference", FLAGS)
  assert reference.wait(timeout=120) == 0, reference.output[-3000:]

  chaos = supervise("chaos", [*FLAGS, f"--max_restarts={MAX_RESTARTS}"])
  kills = kill_at_steps(chaos, tmp_path / "chaos", kill_steps, rng, context)
  context += f"; killed {kills}"
  assert chaos.wait(timeout=120) == 0, f"{context}\n{chaos.output[-3000:]}"
  restarts = re.findall(rf"restarting the group \((\d+) of {MAX_RESTARTS}\)",
                        chaos.output)
  assert restarts == ["1", "2", "3"], f"{context}\n{chaos.output[-3000:]}"
  assert "[supervisor] all 2 workers finished." in chaos.output, context
  resumed = resumed_steps(chaos.output)
  context += f"; restarts resumed from steps {resumed}"
  print(context)
  # At least one restart found a checkpoint and recomputed steps after it.
  assert any(0 < start < kill["step"] for start, kill in zip(resumed, kills)
             ), context

  assert_same_checkpoint(tmp_path / "reference", tmp_path / "chaos", context)
  assert_same_metrics(tmp_path / "reference", tmp_path / "chaos", context)
