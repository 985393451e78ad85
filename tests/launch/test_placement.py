"""One GPU placement decision per process, for every way it is started.

Simulated nodes (1, 2, 4, 8 GPUs; 1, 2, 4 processes), as in
test_devices.py: environments are plain dicts written as each launcher
writes them. Slurm's variables follow its gres plugin
(src/plugins/gres/common/gres_common.c) and srun(1): SLURM_GPUS_ON_NODE
counts the step's GPUs on the node whether or not GPUs are bound to tasks;
CUDA_VISIBLE_DEVICES and SLURM_STEP_GPUS list the task's own GPUs when
bound (--gpus-per-task implies --tres-bind=gres/gpu:per_task:N), all of
the step's otherwise; Slurm up to 23.02 also exported SLURM_GPUS_PER_TASK,
later ones SLURM_TRES_PER_TASK=gres/gpu=N.
"""

import json
import subprocess
import sys

import pytest

from launch.distributed import devices
from launch.distributed import placement
from launch.errors import ConfigError
from tests.processes import REPO_ROOT, harness_env

GPU_COUNTS = (1, 2, 4, 8)
PROCESS_COUNTS = (1, 2, 4)


def ids(gpus) -> str:
  return ",".join(str(gpu) for gpu in gpus)


def tf_config(num_workers: int, index: int) -> str:
  return json.dumps({"cluster": {"worker": [f"localhost:{2000 + i}" for i
                                            in range(num_workers)]},
                     "task": {"type": "worker", "index": index}})


def srun_task(local_id: int, num_tasks: int, **extra: str) -> dict:
  """What srun sets in task `local_id` of `num_tasks` on one node."""
  return {"SLURM_PROCID": str(local_id), "SLURM_LOCALID": str(local_id),
          "SLURM_NODEID": "0", "SLURM_NTASKS": str(num_tasks),
          "SLURM_STEP_TASKS_PER_NODE": str(num_tasks),
          "SLURM_STEP_NODELIST": "gpu07", "SLURMD_NODENAME": "gpu07",
          "SLURM_STEP_ID": "0",
          **extra}


def gpus_per_task_env(local_id, num_tasks, per_task, *, old_slurm=False):
  """srun --ntasks-per-node=T --gpus-per-task=K: bound, global ids."""
  mine = ids(range(local_id * per_task, (local_id + 1) * per_task))
  extra = ({"SLURM_GPUS_PER_TASK": str(per_task)} if old_slurm
           else {"SLURM_TRES_PER_TASK": f"gres/gpu={per_task}"})
  return srun_task(local_id, num_tasks, CUDA_VISIBLE_DEVICES=mine,
                   SLURM_STEP_GPUS=mine,
                   SLURM_GPUS_ON_NODE=str(per_task * num_tasks), **extra)


def gres_env(local_id, num_tasks, num_gpus):
  """srun --ntasks-per-node=T --gres=gpu:G: every task sees the G GPUs."""
  return srun_task(local_id, num_tasks, CUDA_VISIBLE_DEVICES=ids(
      range(num_gpus)), SLURM_STEP_GPUS=ids(range(num_gpus)),
                   SLURM_GPUS_ON_NODE=str(num_gpus))


# Every entry.

@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
def test_alone_a_process_uses_every_visible_gpu(num_gpus):
  decided = placement.decide({}, num_node_gpus=num_gpus)
  assert (decided.entry, decided.env) == ("alone", {})
  assert decided.gpus == tuple(str(i) for i in range(num_gpus))


@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
@pytest.mark.parametrize("num_workers", PROCESS_COUNTS)
def test_launch_local_workers_keep_the_supervisors_split(num_gpus,
                                                         num_workers):
  if num_gpus % num_workers:
    return  # launch.local refuses before starting (test_devices.py).
  split = devices.place_local_workers({}, num_workers=num_workers,
                                      num_node_gpus=num_gpus)
  for index in range(num_workers):
    # A worker inside a Slurm allocation also inherits the SLURM_* of the
    # supervisor's task; its TF_CONFIG wins.
    environ = {**srun_task(0, 1), **split.env(index),
               "TF_CONFIG": tf_config(num_workers, index)}
    decided = placement.decide(environ, num_node_gpus=num_gpus)
    assert decided.entry == "tf_config" and decided.env == {}
    assert decided.gpus == split.workers[index]


@pytest.mark.parametrize("given", ["0", "4,5", "GPU-aaaa,GPU-bbbb", ""])
def test_kubernetes_and_ray_workers_keep_their_gpus(given):
  # A TFJob pod's device plugin, or Ray Train (TensorflowConfig sets
  # TF_CONFIG; Ray sets each worker's CUDA_VISIBLE_DEVICES to its GPUs).
  environ = {"TF_CONFIG": tf_config(4, 1), "CUDA_VISIBLE_DEVICES": given}
  decided = placement.decide(environ, num_node_gpus=8)
  assert decided.entry == "tf_config" and decided.env == {}
  assert decided.gpus == tuple(filter(None, given.split(",")))


@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
@pytest.mark.parametrize("num_tasks", PROCESS_COUNTS)
def test_srun_without_binding_splits_by_local_id(num_gpus, num_tasks):
  if num_gpus % num_tasks:
    with pytest.raises(ConfigError, match=f"^Slurm runs {num_tasks} tasks"):
      placement.decide(gres_env(0, num_tasks, num_gpus),
                       num_node_gpus=num_gpus)
    return
  share = num_gpus // num_tasks
  for local_id in range(num_tasks):
    decided = placement.decide(gres_env(local_id, num_tasks, num_gpus),
                               num_node_gpus=num_gpus)
    mine = tuple(str(i) for i in range(local_id * share,
                                       (local_id + 1) * share))
    assert decided.entry == "slurm" and decided.gpus == mine
    assert decided.env == ({} if num_tasks == 1 else
                           {"CUDA_VISIBLE_DEVICES": ",".join(mine)})


@pytest.mark.parametrize("per_task", [1, 2, 4])
@pytest.mark.parametrize("num_tasks", PROCESS_COUNTS)
@pytest.mark.parametrize("old_slurm", [False, True], ids=["23.11+", "23.02"])
def test_srun_gpus_per_task_is_kept(per_task, num_tasks, old_slurm):
  if per_task * num_tasks > 8:
    return
  for local_id in range(num_tasks):
    environ = gpus_per_task_env(local_id, num_tasks, per_task,
                                old_slurm=old_slurm)
    decided = placement.decide(environ, num_node_gpus=8)
    assert decided.entry == "slurm" and decided.env == {}
    assert decided.gpus == tuple(environ["CUDA_VISIBLE_DEVICES"].split(","))


def test_gpus_per_task_with_binding_turned_off_is_split():
  # srun --gpus-per-task=1 --gpu-bind=none: 4 tasks each see the 4 GPUs.
  environ = gres_env(3, 4, 4)
  assert placement.decide(environ, num_node_gpus=4).env == {
      "CUDA_VISIBLE_DEVICES": "3"}


def test_tasks_sharing_gpus_are_one_sentence():
  # srun --ntasks-per-node=4 --ntasks-per-gpu=2: 2 GPUs, 1 per task.
  environ = srun_task(2, 4, CUDA_VISIBLE_DEVICES="1", SLURM_STEP_GPUS="1",
                      SLURM_GPUS_ON_NODE="2")
  with pytest.raises(ConfigError) as error:
    placement.decide(environ, num_node_gpus=2)
  assert str(error.value) == (
      "Slurm bound the 4 tasks on this node to 2 GPUs (1 each), so tasks"
      " share GPUs, which NCCL refuses; give each task its own GPUs"
      " (--gpus-per-task).")


# After start-up: what TensorFlow sees against what was given.

def test_the_gpus_tensorflow_sees_are_logged():
  seen = placement.compare_gpus_seen(["2", "3"], num_seen=2, is_listed=True)
  assert seen == placement.GpusSeen(
      "GPUs: TensorFlow sees 2 GPUs, as given (CUDA_VISIBLE_DEVICES=2,3).")
  assert placement.compare_gpus_seen([], num_seen=0, is_listed=False) == (
      placement.GpusSeen(""))


def test_several_mig_devices_in_one_process_are_warned_about():
  given = ["MIG-5f6e7d8c-aaaa", "MIG-5f6e7d8c-bbbb"]
  seen = placement.compare_gpus_seen(given, num_seen=1, is_listed=True)
  assert seen.description == (
      "GPUs: TensorFlow sees 1 GPU; given: CUDA_VISIBLE_DEVICES="
      "MIG-5f6e7d8c-aaaa,MIG-5f6e7d8c-bbbb.")
  assert seen.warning == (
      "this process was given 2 GPUs (CUDA_VISIBLE_DEVICES=MIG-5f6e7d8c-aaaa,"
      "MIG-5f6e7d8c-bbbb) but TensorFlow sees 1 GPU: CUDA shows a process"
      " only one MIG device; run one process per MIG device (launch.local"
      " --gpus_per_worker=1, or one Slurm task per device).")


def test_a_tensorflow_without_gpu_support_is_warned_about():
  seen = placement.compare_gpus_seen(["0", "1", "2", "3"], num_seen=0,
                                     is_listed=False)
  assert seen.warning.startswith(
      "this process was given 4 GPUs (all 4 GPUs of the node) but TensorFlow"
      " sees 0 GPUs: this TensorFlow has no GPU support")


# fit() under srun: the decision is applied by launch.api.plan.

_FIT_UNDER_SRUN = r"""
import os, sys
import numpy as np
if "tf_first" in sys.argv:
  import tensorflow as tf
  tf.config.list_physical_devices()
from launch import api
from datasets import from_arrays
from launch.errors import ConfigError
x = np.zeros((32, 4), np.float32); y = np.arange(32) % 2
try:
  api.plan(None, from_arrays(x, y), options=dict(
      model_dir=sys.argv[1], global_batch_size=8, train_steps=2,
      model="mlp"))
except ConfigError as error:
  print("ERROR", error)
print("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
"""


def run_as_srun_task(environ: dict, model_dir, *args: str) -> str:
  completed = subprocess.run(
      [sys.executable, "-c", _FIT_UNDER_SRUN, str(model_dir), *args],
      env=harness_env(**environ), cwd=REPO_ROOT, capture_output=True,
      text=True, timeout=120, check=False)
  assert completed.returncode == 0, completed.stderr[-3000:]
  return completed.stdout


@pytest.mark.slow
def test_fit_under_srun_takes_its_share(tmp_path):
  # The script of "Your script on N workers" calling fit under
  # srun --ntasks-per-node=2 --gres=gpu:4: task 1 must not use GPUs 0, 1.
  output = run_as_srun_task(gres_env(1, 2, 4), tmp_path / "run")
  assert "ERROR" not in output, output
  assert "CUDA_VISIBLE_DEVICES 2,3" in output


@pytest.mark.slow
def test_fit_after_tensorflow_listed_the_gpus_is_one_sentence(tmp_path):
  output = run_as_srun_task(gres_env(1, 2, 4), tmp_path / "run", "tf_first")
  assert ("ERROR this Slurm task must use GPUs 2,3 only, but TensorFlow"
          " already listed the GPUs in this process (a TensorFlow call"
          " before fit), after which CUDA_VISIBLE_DEVICES no longer"
          " applies; call fit before any other TensorFlow call, or bind GPUs"
          " to tasks (srun --gpus-per-task).") in output
  assert "CUDA_VISIBLE_DEVICES 0,1,2,3" in output
