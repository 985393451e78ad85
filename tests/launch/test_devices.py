"""GPU placement over simulated nodes: launch.local workers and Slurm tasks.

Pure Python: device lists and environments are plain values, no GPU and no
TensorFlow strategy is involved.
"""

import os
import re
import stat

import pytest

from launch.distributed import devices
from launch.errors import ConfigError

GPU_COUNTS = (1, 2, 4, 8)
WORKER_COUNTS = (1, 2, 4)
UUIDS = ["GPU-0a1b2c3d-0000-1111-2222-333344445555",
         "GPU-0a1b2c3d-0000-1111-2222-333344446666",
         "MIG-5f6e7d8c-aaaa-bbbb-cccc-ddddeeeeffff",
         "MIG-5f6e7d8c-aaaa-bbbb-cccc-ddddeeee0000"]


def all_gpus(count: int) -> list[str]:
  return [str(index) for index in range(count)]


# CUDA_VISIBLE_DEVICES.

@pytest.mark.parametrize("count", [0, *GPU_COUNTS])
def test_unset_means_every_gpu_of_the_node(count):
  assert devices.parse_visible_devices(None, num_node_gpus=count) == (
      all_gpus(count))


@pytest.mark.parametrize("value", ["", "-1", " ", "NoDevFiles", "-1,0"])
def test_empty_minus_one_and_invalid_first_entry_hide_every_gpu(value):
  assert devices.parse_visible_devices(value, num_node_gpus=8) == []


@pytest.mark.parametrize("value, expected", [
    ("3,5,6,7", ["3", "5", "6", "7"]),
    ("7,0", ["7", "0"]),  # CUDA's order is the variable's order.
    (" 2, 3 ", ["2", "3"]),
    ("0,2,-1,1", ["0", "2"]),  # CUDA stops at the first invalid entry.
    ("1,x,2", ["1"]),
    (",".join(UUIDS), UUIDS),
])
def test_user_ids_are_kept_as_written_never_renumbered(value, expected):
  assert devices.parse_visible_devices(value, num_node_gpus=8) == expected


def test_a_gpu_listed_twice_is_one_sentence():
  with pytest.raises(ConfigError) as error:
    devices.parse_visible_devices("0,1,0", num_node_gpus=2)
  assert str(error.value) == ("CUDA_VISIBLE_DEVICES=0,1,0 lists GPU 0 twice;"
                              " list each GPU once.")


def test_count_node_gpus_reads_the_driver_directory(tmp_path):
  for bus in ("0000:07:00.0", "0000:0a:00.0", "0000:47:00.0"):
    (tmp_path / bus).mkdir()
  assert devices.count_node_gpus(proc_dir=str(tmp_path)) == 3


def test_count_node_gpus_falls_back_to_nvidia_smi(tmp_path):
  fake = tmp_path / "nvidia-smi"
  fake.write_text("#!/bin/sh\n"
                  "echo 'GPU 0: NVIDIA A100 (UUID: GPU-1)'\n"
                  "echo '  MIG 3g.20gb Device 0: (UUID: MIG-1)'\n"
                  "echo 'GPU 1: NVIDIA A100 (UUID: GPU-2)'\n")
  fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
  assert devices.count_node_gpus(proc_dir=str(tmp_path / "absent"),
                                 nvidia_smi=str(fake)) == 2


def test_count_node_gpus_is_zero_without_a_driver(tmp_path):
  assert devices.count_node_gpus(
      proc_dir=str(tmp_path / "absent"),
      nvidia_smi=str(tmp_path / "no-nvidia-smi")) == 0


# launch.local: one block of GPUs per worker.

@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
@pytest.mark.parametrize("num_workers", WORKER_COUNTS)
def test_even_split_gives_each_worker_a_contiguous_block(num_gpus,
                                                         num_workers):
  visible = all_gpus(num_gpus)
  if num_gpus % num_workers:
    with pytest.raises(ConfigError,
                       match=f"^--workers={num_workers} cannot split"):
      devices.local_worker_gpus(visible, num_workers)
    return
  blocks = devices.local_worker_gpus(visible, num_workers)
  share = num_gpus // num_workers
  assert blocks == [visible[index * share:(index + 1) * share]
                    for index in range(num_workers)]
  assert sum(blocks, []) == visible  # Disjoint, in order, nothing unused.


@pytest.mark.parametrize("num_gpus, num_workers, message", [
    (1, 2, "--workers=2 cannot split the 1 visible GPU (0) evenly; use"
           " --workers=1 or --gpus_per_worker=0 to run the workers on CPUs."),
    (2, 4, "--workers=4 cannot split the 2 visible GPUs (0,1) evenly; use"
           " --workers=2 or --gpus_per_worker=0 to run the workers on CPUs."),
    (8, 3, "--workers=3 cannot split the 8 visible GPUs (0,1,2,3,4,5,6,7)"
           " evenly; use --workers=2 or --gpus_per_worker=2 (leaving 2"
           " unused)."),
    (6, 4, "--workers=4 cannot split the 6 visible GPUs (0,1,2,3,4,5)"
           " evenly; use --workers=3 or --gpus_per_worker=1 (leaving 2"
           " unused)."),
])
def test_uneven_split_is_one_sentence_with_the_fix(num_gpus, num_workers,
                                                   message):
  with pytest.raises(ConfigError) as error:
    devices.local_worker_gpus(all_gpus(num_gpus), num_workers)
  assert str(error.value) == message


@pytest.mark.parametrize("num_gpus, num_workers, per_worker, expected", [
    (8, 2, 1, [["0"], ["1"]]),
    (8, 2, 4, [["0", "1", "2", "3"], ["4", "5", "6", "7"]]),
    (8, 4, 1, [["0"], ["1"], ["2"], ["3"]]),
    (8, 3, 2, [["0", "1"], ["2", "3"], ["4", "5"]]),
    (4, 1, 2, [["0", "1"]]),
    (2, 2, 0, [[], []]),  # 0: the workers run on CPUs.
])
def test_gpus_per_worker_overrides_the_even_split(num_gpus, num_workers,
                                                  per_worker, expected):
  assert devices.local_worker_gpus(all_gpus(num_gpus), num_workers,
                                   per_worker) == expected


@pytest.mark.parametrize("num_gpus, num_workers, per_worker, message", [
    (4, 2, 4, "--gpus_per_worker=4 for --workers=2 needs 8 GPUs but 4 GPUs"
              " are visible (0,1,2,3); use --gpus_per_worker=2."),
    (1, 2, 1, "--gpus_per_worker=1 for --workers=2 needs 2 GPUs but 1 GPU is"
              " visible (0); use --workers=1."),
    (2, 4, 1, "--gpus_per_worker=1 for --workers=4 needs 4 GPUs but 2 GPUs"
              " are visible (0,1); use --workers=2."),
])
def test_asking_for_more_gpus_than_visible_is_one_sentence(
    num_gpus, num_workers, per_worker, message):
  with pytest.raises(ConfigError) as error:
    devices.local_worker_gpus(all_gpus(num_gpus), num_workers, per_worker)
  assert str(error.value) == message


@pytest.mark.parametrize("num_workers, per_worker, message", [
    (0, None, "--workers=0 must be positive."),
    (2, -1, "--gpus_per_worker=-1 must be zero or more."),
])
def test_bad_counts_are_rejected(num_workers, per_worker, message):
  with pytest.raises(ConfigError) as error:
    devices.local_worker_gpus(all_gpus(2), num_workers, per_worker)
  assert str(error.value) == message


@pytest.mark.parametrize("num_workers", WORKER_COUNTS)
@pytest.mark.parametrize("per_worker", [None, 0, 1, 2])
@pytest.mark.parametrize("environ", [{}, {"CUDA_VISIBLE_DEVICES": ""},
                                     {"CUDA_VISIBLE_DEVICES": "-1"}],
                         ids=["unset", "empty", "minus-one"])
def test_no_gpus_changes_nothing_for_any_worker(num_workers, per_worker,
                                                environ):
  placement = devices.place_local_workers(
      environ, num_workers=num_workers, gpus_per_worker=per_worker,
      num_node_gpus=0)
  assert [placement.env(index) for index in range(num_workers)] == (
      [{}] * num_workers)
  assert placement.describe() == ""


def test_this_cpu_machine_launches_workers_exactly_as_before():
  """`launch.local --workers=2` here: no driver, so no variable is added."""
  environ = {key: value for key, value in os.environ.items()
             if key != "CUDA_VISIBLE_DEVICES"}
  placement = devices.place_local_workers(
      environ, num_workers=2, num_node_gpus=devices.count_node_gpus())
  assert [placement.env(0), placement.env(1)] == [{}, {}]


def worker_envs(environ, **kwargs) -> list[dict[str, str]]:
  """Each worker's full environment, as the supervisor would build it."""
  placement = devices.place_local_workers(environ, **kwargs)
  return [dict(environ, **placement.env(index))
          for index in range(kwargs["num_workers"])]


@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
@pytest.mark.parametrize("num_workers", WORKER_COUNTS)
def test_each_worker_environment_sees_only_its_block(num_gpus, num_workers):
  if num_gpus % num_workers:
    return  # Covered by the uneven-split tests.
  environ = {"PATH": "/usr/bin", "OMP_NUM_THREADS": "4"}
  envs = worker_envs(environ, num_workers=num_workers, num_node_gpus=num_gpus)
  share = num_gpus // num_workers
  for index, env in enumerate(envs):
    assert env.pop("CUDA_VISIBLE_DEVICES") == ",".join(
        str(gpu) for gpu in range(index * share, (index + 1) * share))
    assert env == environ  # Nothing else is added or changed.


def test_user_set_devices_are_split_not_renumbered():
  envs = worker_envs({"CUDA_VISIBLE_DEVICES": "3,5,6,7"}, num_workers=2,
                     num_node_gpus=8)
  assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["3,5", "6,7"]


def test_user_set_uuids_are_split_as_written():
  envs = worker_envs({"CUDA_VISIBLE_DEVICES": ",".join(UUIDS)},
                     num_workers=4, num_node_gpus=8)
  assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == UUIDS


def test_user_set_devices_that_do_not_divide_name_them():
  with pytest.raises(ConfigError) as error:
    devices.place_local_workers({"CUDA_VISIBLE_DEVICES": "1,2,3"},
                                num_workers=2, num_node_gpus=8)
  assert str(error.value) == (
      "--workers=2 cannot split the 3 visible GPUs (1,2,3) evenly; use"
      " --workers=1 or --gpus_per_worker=1 (leaving 1 unused).")


def test_gpus_per_worker_zero_hides_the_gpus():
  envs = worker_envs({}, num_workers=2, gpus_per_worker=0, num_node_gpus=4)
  assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["", ""]


@pytest.mark.parametrize("environ, kwargs, sentence", [
    ({}, {"num_workers": 2, "num_node_gpus": 8},
     "GPUs (all 8 GPUs of the node): worker:0 gets 0,1,2,3, worker:1 gets"
     " 4,5,6,7."),
    ({"CUDA_VISIBLE_DEVICES": "3,5,6,7"},
     {"num_workers": 2, "gpus_per_worker": 1, "num_node_gpus": 8},
     "GPUs (CUDA_VISIBLE_DEVICES=3,5,6,7): worker:0 gets 3, worker:1 gets 5;"
     " 2 stay unused."),
    ({}, {"num_workers": 2, "gpus_per_worker": 0, "num_node_gpus": 2},
     "GPUs: --gpus_per_worker=0 hides all 2 GPUs of the node from the"
     " workers; they run on CPUs."),
])
def test_the_supervisor_log_line(environ, kwargs, sentence):
  assert devices.place_local_workers(environ, **kwargs).describe() == sentence


# Slurm: one srun task's GPUs.

def slurm_env(local_id: int, tasks_per_node: str = "4", node_id: int = 0,
              **extra: str) -> dict[str, str]:
  return {"SLURM_PROCID": str(local_id), "SLURM_LOCALID": str(local_id),
          "SLURM_NODEID": str(node_id),
          "SLURM_STEP_TASKS_PER_NODE": tasks_per_node, **extra}


def test_outside_slurm_or_under_tf_config_nothing_is_decided():
  assert devices.slurm_task_gpus({}, num_node_gpus=8) is None
  assert devices.slurm_task_gpus(
      {"SLURM_PROCID": "0"}, num_node_gpus=8) is None  # Not an srun task.
  # launch.local's workers inherit SLURM_* inside an allocation, but their
  # TF_CONFIG (and GPUs) come from the supervisor.
  assert devices.slurm_task_gpus(
      slurm_env(1, TF_CONFIG='{"cluster": {}}'), num_node_gpus=8) is None


@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
@pytest.mark.parametrize("num_tasks", WORKER_COUNTS)
@pytest.mark.parametrize("slurm_sets_devices", [True, False],
                         ids=["gres-unbound", "no-gres"])
def test_unbound_tasks_take_their_block_by_local_id(num_gpus, num_tasks,
                                                    slurm_sets_devices):
  extra = ({"CUDA_VISIBLE_DEVICES": ",".join(all_gpus(num_gpus)),
            "SLURM_GPUS_ON_NODE": str(num_gpus),
            "SLURM_STEP_GPUS": ",".join(all_gpus(num_gpus))}
           if slurm_sets_devices else {})
  environs = [slurm_env(local_id, str(num_tasks), **extra)
              for local_id in range(num_tasks)]
  if num_tasks == 1:
    placement = devices.slurm_task_gpus(environs[0], num_node_gpus=num_gpus)
    assert placement.gpus == tuple(all_gpus(num_gpus))
    assert placement.env == {}
    return
  if num_gpus % num_tasks:
    with pytest.raises(ConfigError, match=f"^Slurm runs {num_tasks} tasks"):
      devices.slurm_task_gpus(environs[0], num_node_gpus=num_gpus)
    return
  share = num_gpus // num_tasks
  for local_id, environ in enumerate(environs):
    placement = devices.slurm_task_gpus(environ, num_node_gpus=num_gpus)
    expected = all_gpus(num_gpus)[local_id * share:(local_id + 1) * share]
    assert placement.gpus == tuple(expected)
    assert placement.env == {"CUDA_VISIBLE_DEVICES": ",".join(expected)}
    assert "Slurm did not bind GPUs to tasks" in placement.description


@pytest.mark.parametrize("visible, step_gpus", [
    ("0", "3"),           # --gpus-per-task=1 under a device cgroup.
    ("3", "3"),           # The same without cgroup: global ids.
    ("2,3", "2,3"),       # --gpus-per-task=2.
    ("GPU-aaaa", "1"),    # gres.conf with env UUIDs.
])
def test_gpus_slurm_bound_to_the_task_are_kept(visible, step_gpus):
  environ = slurm_env(1, "4", CUDA_VISIBLE_DEVICES=visible,
                      SLURM_GPUS_ON_NODE="8", SLURM_STEP_GPUS=step_gpus,
                      GPU_DEVICE_ORDINAL=visible)
  placement = devices.slurm_task_gpus(environ, num_node_gpus=8)
  assert placement.gpus == tuple(visible.split(","))
  assert placement.env == {}
  assert "bound to it: the step has 8 on this node" in placement.description


def test_a_wrapper_that_set_one_gpu_per_task_is_kept():
  environ = slurm_env(2, "4", CUDA_VISIBLE_DEVICES="2", SLURM_GPUS_ON_NODE="4")
  assert devices.slurm_task_gpus(environ, num_node_gpus=4).env == {}


def test_old_slurm_without_gpus_on_node_uses_the_job_gpus():
  environ = slurm_env(1, "2", CUDA_VISIBLE_DEVICES="1",
                      SLURM_JOB_GPUS="0,1")
  assert devices.slurm_task_gpus(environ, num_node_gpus=2).env == {}
  unbound = slurm_env(1, "2", CUDA_VISIBLE_DEVICES="0,1",
                      SLURM_JOB_GPUS="0,1")
  assert devices.slurm_task_gpus(unbound, num_node_gpus=2).env == {
      "CUDA_VISIBLE_DEVICES": "1"}


def test_more_visible_gpus_than_slurm_allocated_are_refused():
  # gres without device files: Slurm counts 2 GPUs but cannot name them.
  environ = slurm_env(0, "2", SLURM_GPUS_ON_NODE="2")
  with pytest.raises(ConfigError, match=re.escape(
      "Slurm allocated 2 GPUs on this node but did not name them, and the 2"
      " tasks each see 8 GPUs (0,1,2,3,4,5,6,7); bind GPUs to tasks"
      " (--gpus-per-task) or set CUDA_VISIBLE_DEVICES.")):
    devices.slurm_task_gpus(environ, num_node_gpus=8)


def test_a_user_list_for_all_tasks_is_split_by_local_id():
  environs = [slurm_env(local_id, "2", CUDA_VISIBLE_DEVICES="3,5,6,7")
              for local_id in range(2)]
  assert [devices.slurm_task_gpus(environ, num_node_gpus=8).env
          for environ in environs] == [{"CUDA_VISIBLE_DEVICES": "3,5"},
                                       {"CUDA_VISIBLE_DEVICES": "6,7"}]


def test_tasks_per_node_of_a_multi_node_step():
  # Nodes 0 and 1 run 2 tasks, node 2 runs 4; this is local task 3 of node 2.
  environ = slurm_env(3, "2(x2),4", node_id=2, SLURM_GPUS_ON_NODE="8",
                      CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7",
                      SLURM_TASKS_PER_NODE="8(x3)")  # The job's, not used.
  assert devices.slurm_task_gpus(environ, num_node_gpus=8).gpus == ("6", "7")


def test_job_tasks_per_node_is_the_fallback():
  environ = slurm_env(1, "", SLURM_TASKS_PER_NODE="2")
  assert devices.slurm_tasks_on_node(environ) == 2
  assert devices.slurm_task_gpus(environ, num_node_gpus=2).gpus == ("1",)


@pytest.mark.parametrize("gpus_on_node", ["4", "a100:4", "4(S:0-1)"])
def test_gpus_on_node_formats(gpus_on_node):
  environ = slurm_env(0, "2", CUDA_VISIBLE_DEVICES="0,1",
                      SLURM_GPUS_ON_NODE=gpus_on_node)
  assert devices.slurm_task_gpus(environ, num_node_gpus=4).env == {}


def test_no_gpus_under_slurm_changes_nothing():
  placement = devices.slurm_task_gpus(slurm_env(1, "4"), num_node_gpus=0)
  assert placement == devices.TaskPlacement((), {}, "")
  placement = devices.slurm_task_gpus(
      slurm_env(1, "4", CUDA_VISIBLE_DEVICES="NoDevFiles"), num_node_gpus=8)
  assert placement.env == {}


@pytest.mark.parametrize("environ, message", [
    (slurm_env(0, "3", CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7",
               SLURM_GPUS_ON_NODE="8"),
     "Slurm runs 3 tasks on this node but its 8 GPUs (0,1,2,3,4,5,6,7) do"
     " not split evenly among them; use --ntasks-per-node=2 or"
     " --gpus-per-task."),
    (slurm_env(0, "4", CUDA_VISIBLE_DEVICES="0,1", SLURM_GPUS_ON_NODE="2"),
     "Slurm runs 4 tasks on this node but its 2 GPUs (0,1) do not split"
     " evenly among them; use --ntasks-per-node=2 or --gpus-per-task."),
    (slurm_env(4, "4"),
     "SLURM_LOCALID=4 is out of range for the 4 task(s) Slurm runs on this"
     " node."),
    ({**slurm_env(0, "2,2"), "SLURM_NODEID": "2"},
     "SLURM_NODEID=2 is out of range for the 2 node(s) of"
     " SLURM_STEP_TASKS_PER_NODE=2,2."),
    ({key: value for key, value in slurm_env(0, "2,2").items()
      if key != "SLURM_NODEID"},
     "SLURM_STEP_TASKS_PER_NODE=2,2 lists 2 nodes but SLURM_NODEID is unset;"
     " start the tasks with srun."),
    ({**slurm_env(0, "2"), "SLURM_LOCALID": "first"},
     "SLURM_LOCALID=first must be an integer."),
    (slurm_env(0, "two"), "cannot read SLURM_TASKS_PER_NODE='two'."),
])
def test_bad_slurm_environments_are_one_sentence(environ, message):
  with pytest.raises(ConfigError) as error:
    devices.slurm_task_gpus(environ, num_node_gpus=8)
  assert str(error.value) == message
