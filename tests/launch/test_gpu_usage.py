"""Memory, collectives and input choices over simulated GPU counts.

Pure Python: the choices are plain values; no TensorFlow strategy is built.
"""

import json

import pytest

from launch.distributed import cluster as cluster_lib
from launch.distributed import gpu_usage
from launch.errors import ConfigError

GPU_COUNTS = (1, 2, 4, 8)


def tf_config_task(cluster, task_type="worker", index=0):
  return cluster_lib.parse_tf_config(json.dumps(
      {"cluster": cluster, "task": {"type": task_type, "index": index}}))


# Processes per node.

def test_a_single_process_is_alone():
  assert gpu_usage.processes_on_host(cluster_lib.ClusterInfo()) == 1


@pytest.mark.parametrize("num_workers", [2, 4])
def test_launch_local_workers_share_localhost(num_workers):
  cluster = {"worker": [f"localhost:{2000 + index}"
                        for index in range(num_workers)]}
  for index in range(num_workers):
    assert gpu_usage.processes_on_host(
        tf_config_task(cluster, index=index)) == num_workers


def test_only_tasks_of_the_same_host_count():
  cluster = {"chief": ["node1:1"], "worker": ["node1:2", "node2:1",
                                              "node2:2", "node2:3"],
             "evaluator": ["node1:3"]}
  assert gpu_usage.processes_on_host(tf_config_task(cluster, "chief")) == 3
  assert gpu_usage.processes_on_host(tf_config_task(cluster, "worker", 2)) == 3
  assert gpu_usage.processes_on_host(
      tf_config_task(cluster, "evaluator")) == 3


def test_loopback_names_are_one_host():
  cluster = {"worker": ["localhost:1", "127.0.0.1:2", "[::1]:3", "other:4"]}
  assert gpu_usage.processes_on_host(tf_config_task(cluster, index=1)) == 3


def test_slurm_tasks_per_node_come_from_the_slurm_cluster():
  environ = {"SLURM_STEP_NODELIST": "gpu[01-02]",
             "SLURM_STEP_TASKS_PER_NODE": "4,2", "SLURM_STEP_NUM_TASKS": "6",
             "SLURM_PROCID": "5", "SLURM_STEP_ID": "0"}
  info = cluster_lib.from_slurm(environ, port_base=8888)
  assert gpu_usage.processes_on_host(info) == 2


# Memory.

@pytest.mark.parametrize("processes, mode", [(0, "all"), (1, "all"),
                                             (2, "growth"), (4, "growth")])
def test_auto_grows_memory_when_processes_share_the_node(processes, mode):
  policy = gpu_usage.choose_memory_policy("auto", processes_on_node=processes)
  assert policy.mode == mode and policy.limit_mb is None
  assert policy.description.endswith("--gpu_memory=auto).")


def test_the_log_says_which_policy_and_why():
  assert gpu_usage.choose_memory_policy(
      "auto", processes_on_node=2).description == (
          "GPU memory: growth, allocated as needed (2 processes of this run"
          " on this node; --gpu_memory=auto).")
  assert gpu_usage.choose_memory_policy(
      "auto", processes_on_node=1).description == (
          "GPU memory: all, nearly all of each GPU taken up front (one"
          " process of this run on this node; --gpu_memory=auto).")


@pytest.mark.parametrize("option, mode, limit", [
    ("growth", "growth", None), ("all", "all", None), (" ALL ", "all", None),
    ("8000", "limit", 8000)])
def test_explicit_memory_options(option, mode, limit):
  for processes in (1, 4):
    policy = gpu_usage.choose_memory_policy(option,
                                            processes_on_node=processes)
    assert (policy.mode, policy.limit_mb) == (mode, limit)


def test_a_limit_is_logged_in_megabytes():
  assert gpu_usage.choose_memory_policy(
      "8000", processes_on_node=2).description == (
          "GPU memory: at most 8000 MB per GPU (--gpu_memory=8000).")


@pytest.mark.parametrize("option", ["", "lots", "0", "-5", "1.5", "8GB"])
def test_bad_memory_options_are_one_sentence(option):
  with pytest.raises(ConfigError) as error:
    gpu_usage.choose_memory_policy(option, processes_on_node=1)
  assert str(error.value) == (f"--gpu_memory={option} must be auto, growth,"
                              " all or a per-GPU limit in MB such as 8000.")


@pytest.mark.parametrize("forced, mode", [("true", "growth"),
                                          ("FALSE", "all")])
def test_auto_follows_tensorflows_own_variable(forced, mode):
  for processes in (1, 2):
    policy = gpu_usage.choose_memory_policy(
        "auto", processes_on_node=processes,
        environ={"TF_FORCE_GPU_ALLOW_GROWTH": forced})
    assert policy.mode == mode
    assert f"TF_FORCE_GPU_ALLOW_GROWTH={forced.lower()}" in (
        policy.description)


def test_an_explicit_mode_must_agree_with_tensorflows_variable():
  with pytest.raises(ConfigError) as error:
    gpu_usage.choose_memory_policy(
        "all", processes_on_node=1,
        environ={"TF_FORCE_GPU_ALLOW_GROWTH": "true"})
  assert str(error.value) == ("--gpu_memory=all contradicts"
                              " TF_FORCE_GPU_ALLOW_GROWTH=true; unset the"
                              " variable or change the flag.")
  policy = gpu_usage.choose_memory_policy(
      "growth", processes_on_node=1,
      environ={"TF_FORCE_GPU_ALLOW_GROWTH": "true"})
  assert policy.mode == "growth"


# Collectives.

@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
def test_multi_worker_on_gpus_uses_nccl_with_packing(num_gpus):
  choice = gpu_usage.choose_collectives("multi_worker", num_gpus=num_gpus)
  assert (choice.implementation, choice.communication,
          choice.cross_device_ops) == ("NCCL", "NCCL", None)
  assert choice.bytes_per_pack == 32 * 1024 * 1024
  assert "NCCL all-reduce across the workers" in choice.description


@pytest.mark.parametrize("num_gpus", [2, 4, 8])
def test_mirrored_on_gpus_uses_nccl_all_reduce(num_gpus):
  choice = gpu_usage.choose_collectives("mirrored", num_gpus=num_gpus)
  assert (choice.implementation, choice.communication,
          choice.cross_device_ops, choice.bytes_per_pack) == (
              "NCCL", None, "NcclAllReduce", 0)
  assert f"over the {num_gpus} GPUs" in choice.description


def test_mirrored_under_xla_passes_no_cross_device_ops():
  choice = gpu_usage.choose_collectives("mirrored", num_gpus=4,
                                        jit_compile=True)
  assert choice.implementation == "NCCL"
  assert choice.cross_device_ops is None


@pytest.mark.parametrize("jit_compile", [False, True])
def test_cpus_keep_tensorflows_ring_defaults(jit_compile):
  mirrored = gpu_usage.choose_collectives("mirrored", num_gpus=0,
                                          jit_compile=jit_compile)
  assert (mirrored.implementation, mirrored.communication,
          mirrored.cross_device_ops, mirrored.bytes_per_pack) == (
              "RING", None, None, 0)
  multi_worker = gpu_usage.choose_collectives("multi_worker", num_gpus=0)
  assert (multi_worker.implementation, multi_worker.communication,
          multi_worker.bytes_per_pack) == ("RING", "RING", 0)


@pytest.mark.parametrize("num_gpus", [0, 1])
def test_one_device_has_no_collectives(num_gpus):
  choice = gpu_usage.choose_collectives("one_device", num_gpus=num_gpus)
  assert choice == gpu_usage.Collectives(
      "none", description="Collectives: none (one replica).")


def test_unresolved_kinds_are_a_programming_error():
  with pytest.raises(ValueError):
    gpu_usage.choose_collectives("auto", num_gpus=2)


# Input placement.

def test_cpus_keep_the_input_defaults():
  placement = gpu_usage.choose_input_placement(num_gpus=0)
  assert placement.input_options_kwargs() == {}
  assert placement.description == ""


@pytest.mark.parametrize("num_gpus", GPU_COUNTS)
def test_gpus_get_batches_ahead_of_the_step(num_gpus):
  placement = gpu_usage.choose_input_placement(num_gpus=num_gpus)
  assert placement.input_options_kwargs() == {
      "experimental_fetch_to_device": True,
      "experimental_per_replica_buffer_size": 2}
  assert placement.description.startswith(
      "Input: batches are built on the host and copied to each GPU")


# Memory settings once TensorFlow's runtime started (a notebook's second fit).

GROWTH = gpu_usage.MemoryPolicy("growth")
ALL = gpu_usage.MemoryPolicy("all")
LIMIT = gpu_usage.MemoryPolicy("limit", 8000)


@pytest.mark.parametrize("policy", [GROWTH, ALL, LIMIT])
@pytest.mark.parametrize("is_started", [False, True])
def test_the_settings_in_effect_are_kept(policy, is_started):
  in_effect = gpu_usage.MemoryPolicy(policy.mode, policy.limit_mb,
                                     description="another run's sentence")
  assert not gpu_usage.needs_memory_change(policy, in_effect=in_effect,
                                           is_started=is_started)


@pytest.mark.parametrize("policy, in_effect", [
    (GROWTH, ALL), (ALL, GROWTH), (LIMIT, GROWTH), (ALL, LIMIT),
    (gpu_usage.MemoryPolicy("limit", 4000), LIMIT)])
def test_before_start_up_other_settings_are_applied(policy, in_effect):
  assert gpu_usage.needs_memory_change(policy, in_effect=in_effect,
                                       is_started=False)


@pytest.mark.parametrize("policy, in_effect, asked, kept", [
    (GROWTH, ALL, "growth", "all"),
    (ALL, GROWTH, "all", "growth"),  # Switching back was silently ignored.
    (LIMIT, GROWTH, "8000", "growth"),
    (gpu_usage.MemoryPolicy("limit", 4000), LIMIT, "4000", "8000"),
])
def test_after_start_up_other_settings_are_one_sentence(policy, in_effect,
                                                        asked, kept):
  with pytest.raises(ConfigError) as error:
    gpu_usage.needs_memory_change(policy, in_effect=in_effect,
                                  is_started=True)
  assert str(error.value) == (
      f"--gpu_memory={asked} cannot take effect: TensorFlow already set up"
      f" this process's GPUs with {kept} (once per process, at its first op"
      f" or strategy); pass --gpu_memory={kept}, or run this before any"
      " other TensorFlow code in a new process (restart the notebook's"
      " kernel).")


@pytest.mark.parametrize("growth, limit, expected", [
    (False, None, ALL), (True, None, GROWTH), (False, 8000, LIMIT)])
def test_memory_in_effect_from_tensorflows_settings(growth, limit, expected):
  assert gpu_usage.memory_in_effect(growth=growth, limit_mb=limit) == expected
