"""Every built-in model trains with `python -m launch`'s flags everywhere.

On 1, 2 and 4 logical CPUs (one device, MirroredStrategy) the flags are
parsed and run in this process by the code behind `python -m launch`
(`launch.run.plan.plan_run`, `launch.run.execute.execute`), which saves a
process start per case; on 2 workers (MultiWorkerMirroredStrategy on
localhost) they are real `python -m launch` processes. Thresholds are well
above chance and below what 120 steps reached when measured (in comments).
"""

import math

import pytest

from launch.distributed import cluster as cluster_lib
from launch.run import plan as plan_lib
from launch.run import execute as run_lib
from tests.processes import run_workers
from tests.training import config_from_flags

# model: (flags, minimum eval accuracy after 120 steps; two_head: of digit).
MODELS = {
    # Measured on 2 replicas: 0.94.
    "mlp": (["--model=mlp"], 0.8),
    # 0.99.
    "cnn": (["--model=cnn", "--sync_batchnorm"], 0.8),
    # The notes' two-input binary model, sigmoid output; 0.94.
    "functional": (["--model=functional", "--dataset=digits_halves",
                    "--loss=binary_crossentropy", "--nofrom_logits",
                    "--metrics=accuracy,auc"], 0.85),
    # Softmax output, as in the notes; 0.94.
    "subclassed": (["--model=subclassed", "--nofrom_logits"], 0.8),
    # LSTM on 4-class sequences (chance 0.25); 0.63.
    "rnn": (["--model=rnn", "--dataset=sequences"], 0.4),
    # Two outputs, weighted losses; digit_accuracy 0.93.
    "two_head": (["--model=two_head", "--dataset=digits_two_targets",
                  "--loss=digit:sparse_categorical_crossentropy,"
                  "large:binary_crossentropy", "--loss_weights=large:0.5"],
                 0.8),
}
COMMON = ["--train_steps=120", "--steps_per_loop=40", "--global_batch_size=32"]


def final_eval(output: str) -> dict[str, float]:
  line = [l for l in output.splitlines() if l.startswith("Final eval")][-1]
  fields = line.split(": ", 1)[1].split(" (")[0].split(", ")
  return {name: float(value) for name, value in
          (field.split() for field in fields)}


def run_in_process(args: list[str]) -> tuple[plan_lib.Plan, dict]:
  """Parses `python -m launch` flags here, plans and runs; restores flags."""
  plan = plan_lib.plan_run(config_from_flags(args), cluster_lib.ClusterInfo())
  result = run_lib.execute(plan)
  return plan, dict(result.logs, step=result.step)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize(
    "cpu_devices", [1, pytest.param(2, marks=pytest.mark.slow),
                    pytest.param(4, marks=pytest.mark.slow)])
def test_builtin_model_trains_on_logical_cpus(tmp_path, model, cpu_devices):
  model_flags, minimum = MODELS[model]
  plan, logs = run_in_process([*model_flags, *COMMON,
                               f"--cpu_devices={cpu_devices}",
                               f"--model_dir={tmp_path}"])
  assert (plan.strategy_kind, plan.num_replicas) == (
      ("one_device", 1) if cpu_devices == 1 else ("mirrored", cpu_devices))
  accuracy = logs.get("accuracy", logs.get("digit_accuracy"))
  assert math.isfinite(logs["loss"]) and accuracy >= minimum, logs
  assert logs["examples"] == plan.eval_source.num_examples
  assert (tmp_path / "export" / "saved_model").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(MODELS))
def test_builtin_model_trains_on_two_workers(tmp_path, model):
  model_flags, minimum = MODELS[model]
  results = run_workers([*model_flags, *COMMON, f"--model_dir={tmp_path}"], 2)
  for result in results:
    assert result.returncode == 0, result.stdout[-3000:]
  assert "MultiWorkerMirroredStrategy with 2 replica(s)" in results[0].stdout
  logs = final_eval(results[0].stdout)
  accuracy = logs.get("accuracy", logs.get("digit_accuracy"))
  assert math.isfinite(logs["loss"]) and accuracy >= minimum, logs
