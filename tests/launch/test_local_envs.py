"""What each `launch.local` worker receives: its GPUs and its CPU threads."""

import json
import os

import pytest

from launch.local import launcher as local
from launch.distributed import placement


@pytest.fixture
def supervisor_flags():
  if not local._SUPERVISOR_FLAGS.is_parsed():
    local._SUPERVISOR_FLAGS(["launch.local"], known_only=True)
  yield
  local._SUPERVISOR_FLAGS["gpus_per_worker"].value = None


@pytest.mark.parametrize("visible,workers,per_worker,expected", [
    ("0,1,2,3,4,5,6,7", 2, None, ["0,1,2,3", "4,5,6,7"]),
    ("0,1,2,3,4,5,6,7", 4, None, ["0,1", "2,3", "4,5", "6,7"]),
    ("3,5,6,7", 2, None, ["3,5", "6,7"]),
    ("0,1,2,3", 2, 1, ["0", "1"]),
    ("0,1", 2, 0, ["", ""]),
])
def test_workers_share_the_visible_gpus(monkeypatch, supervisor_flags,
                                        visible, workers, per_worker,
                                        expected):
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
  local._SUPERVISOR_FLAGS["gpus_per_worker"].value = per_worker
  envs = local._worker_envs(workers)
  assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == expected


def test_without_gpus_only_the_threads_are_set(monkeypatch, supervisor_flags):
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
  monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
  monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
  threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
  assert local._worker_envs(2) == (
      {"TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads},
  ) * 2


def test_the_users_thread_settings_win(monkeypatch, supervisor_flags):
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
  monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "7")
  monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
  assert all("TF_NUM_INTRAOP_THREADS" not in env
             for env in local._worker_envs(2))


def test_gpus_that_do_not_divide_are_one_sentence(monkeypatch,
                                                  supervisor_flags, capsys):
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
  with pytest.raises(SystemExit) as exited:
    local._worker_envs(2)
  assert exited.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(
      "error: --workers=2 cannot split the 3 visible GPUs (0,1,2) evenly")


@pytest.mark.parametrize("visible,workers", [
    ("0,1,2,3,4,5,6,7", 2), ("0,1,2,3,4,5,6,7", 4), ("3,5,6,7", 2),
    ("0", 1)])
def test_each_worker_keeps_its_share_in_its_own_placement(
    monkeypatch, supervisor_flags, visible, workers):
  # What each worker process then decides (launch.distributed.placement, called by
  # fit) must be the supervisor's share, under srun's variables too.
  monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
  envs = local._worker_envs(workers)
  for index, env in enumerate(envs):
    worker = {"SLURM_PROCID": "0", "SLURM_LOCALID": "0",
              "SLURM_STEP_TASKS_PER_NODE": "1", **env,
              "TF_CONFIG": json.dumps({"cluster": {"worker": [
                  f"localhost:{3000 + i}" for i in range(workers)]},
                  "task": {"type": "worker", "index": index}})}
    decided = placement.decide(worker, num_node_gpus=8)
    assert decided.env == {}
    assert ",".join(decided.gpus) == env["CUDA_VISIBLE_DEVICES"]
