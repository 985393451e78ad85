import json
import re

import pytest

from launch.distributed import cluster as cluster_lib
from launch.errors import ConfigError

TWO_WORKERS = {"worker": ["localhost:2222", "localhost:2223"]}


def tf_config(cluster, task=None) -> str:
  value = {"cluster": cluster}
  if task is not None:
    value["task"] = task
  return json.dumps(value)


@pytest.mark.parametrize("text", [None, "", "  ", "{}", '{"cluster": {}}'])
def test_absent_or_empty_is_single_process(text):
  info = cluster_lib.parse_tf_config(text)
  assert not info.is_multi_worker
  assert info.is_chief
  assert info.num_workers == 1


def test_workers_only_worker_zero_is_chief():
  infos = [cluster_lib.parse_tf_config(
      tf_config(TWO_WORKERS, {"type": "worker", "index": index}))
           for index in range(2)]
  assert [info.is_chief for info in infos] == [True, False]
  assert [info.worker_id for info in infos] == [0, 1]
  assert all(info.num_workers == 2 and info.is_multi_worker for info in infos)


def test_chief_plus_workers_ranks_chief_first_and_evaluator_apart():
  cluster = {"chief": ["c:1"], "worker": ["w:1", "w:2"], "evaluator": ["e:1"]}
  chief = cluster_lib.parse_tf_config(
      tf_config(cluster, {"type": "chief", "index": 0}))
  worker = cluster_lib.parse_tf_config(
      tf_config(cluster, {"type": "worker", "index": 1}))
  evaluator = cluster_lib.parse_tf_config(
      tf_config(cluster, {"type": "evaluator", "index": 0}))
  assert chief.is_chief and chief.worker_id == 0
  assert not worker.is_chief and worker.worker_id == 2
  assert evaluator.is_evaluator and not evaluator.is_chief
  assert chief.num_workers == 3


def test_round_trip_through_to_tf_config():
  info = cluster_lib.parse_tf_config(
      tf_config(TWO_WORKERS, {"type": "worker", "index": 1}))
  assert cluster_lib.parse_tf_config(cluster_lib.to_tf_config(info)) == info


def test_ipv6_address_is_accepted():
  info = cluster_lib.parse_tf_config(tf_config(
      {"worker": ["[::1]:2222", "[::1]:2223"]}, {"type": "worker",
                                                 "index": 0}))
  assert info.num_workers == 2


BROKEN = {
    "not json": ("{cluster:", "not valid JSON"),
    "json list": ("[1, 2]", "must be a JSON object"),
    "task without cluster": ('{"task": {"type": "worker", "index": 0}}',
                             "no \"cluster\""),
    "cluster not object": (tf_config(["a:1"], {}), "non-empty object"),
    "missing task": (tf_config(TWO_WORKERS), "no \"task\""),
    "task not object": (tf_config(TWO_WORKERS, "worker"), "\"task\" must be"),
    "unknown role": (tf_config({"trainer": ["a:1"]}, {"type": "trainer"}),
                     "unknown role 'trainer'"),
    "role not list": (tf_config({"worker": "a:1"}, {"type": "worker"}),
                      "non-empty list"),
    "empty role": (tf_config({"worker": []}, {"type": "worker"}),
                   "non-empty list"),
    "no port": (tf_config({"worker": ["localhost"]}, {"type": "worker"}),
                "cluster.worker[0] is 'localhost'"),
    "port too large": (tf_config({"worker": ["a:70000"]}, {"type": "worker"}),
                       "port from 1 to 65535"),
    "address not string": (tf_config({"worker": [2222]}, {"type": "worker"}),
                           "must be a \"host:port\" string"),
    "duplicate address": (tf_config({"worker": ["a:1", "a:1"]},
                                    {"type": "worker", "index": 0}),
                          "gives a:1 to both worker:0 and worker:1"),
    "two chiefs": (tf_config({"chief": ["a:1", "b:1"]}, {"type": "chief"}),
                   "at most one"),
    "ps tasks": (tf_config({"worker": ["a:1"], "ps": ["b:1"]},
                           {"type": "worker", "index": 0}),
                 "parameter-server training is not supported"),
    "evaluator only": (tf_config({"evaluator": ["a:1"]}, {"type": "evaluator"}),
                       "no \"chief\" or \"worker\""),
    "task type not in cluster": (tf_config(TWO_WORKERS, {"type": "chief"}),
                                 "task.type 'chief' is not a role"),
    "index out of range": (tf_config(TWO_WORKERS,
                                     {"type": "worker", "index": 2}),
                           "task.index 2 is out of range for the 2 worker"),
    "negative index": (tf_config(TWO_WORKERS, {"type": "worker", "index": -1}),
                       "out of range"),
    "index not int": (tf_config(TWO_WORKERS, {"type": "worker", "index": "0"}),
                      "task.index must be an integer"),
}


@pytest.mark.parametrize("text,message", BROKEN.values(), ids=BROKEN.keys())
def test_broken_tf_config_names_the_problem(text, message):
  with pytest.raises(ConfigError, match=None) as raised:
    cluster_lib.parse_tf_config(text)
  assert message in str(raised.value)
  assert str(raised.value).endswith(".")
  assert "\n" not in str(raised.value)


SLURM_2X2 = {"SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_TASKS_PER_NODE": "2(x2)",
             "SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
             "SLURMD_NODENAME": "gpu08", "SLURM_STEP_ID": "0"}


@pytest.mark.parametrize("hostlist,expected", [
    ("node1", ["node1"]),
    ("node[1-3]", ["node1", "node2", "node3"]),
    ("gpu[07-09,11],cpu5", ["gpu07", "gpu08", "gpu09", "gpu11", "cpu5"]),
    ("rack[1-2]-a", ["rack1-a", "rack2-a"]),
])
def test_expand_slurm_hostlist(hostlist, expected):
  assert cluster_lib.expand_hostlist(hostlist) == expected


def test_expand_tasks_per_node():
  assert cluster_lib.expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]


def test_slurm_tasks_become_workers_with_per_node_ports():
  info = cluster_lib.from_environment(SLURM_2X2, slurm_port_base=29500)
  assert info.cluster == {"worker": ("gpu07:29500", "gpu07:29501",
                                     "gpu08:29500", "gpu08:29501")}
  assert (info.task_type, info.task_index) == ("worker", 3)
  assert not info.is_chief and info.num_workers == 4
  chief = cluster_lib.from_environment(dict(
      SLURM_2X2, SLURM_PROCID="0", SLURM_LOCALID="0", SLURMD_NODENAME="gpu07"))
  assert chief.is_chief


def test_step_variables_win_over_job_variables():
  environ = dict(SLURM_2X2, SLURM_STEP_NODELIST="gpu07",
                 SLURM_STEP_TASKS_PER_NODE="2", SLURM_STEP_NUM_TASKS="2",
                 SLURM_PROCID="1", SLURMD_NODENAME="gpu07")
  info = cluster_lib.from_environment(environ, slurm_port_base=9000)
  assert info.cluster == {"worker": ("gpu07:9000", "gpu07:9001")}


def test_tf_config_wins_over_slurm_and_one_task_is_single():
  environ = dict(SLURM_2X2, TF_CONFIG=tf_config(
      TWO_WORKERS, {"type": "worker", "index": 1}))
  assert cluster_lib.from_environment(environ).cluster == {
      "worker": ("localhost:2222", "localhost:2223")}
  single = {"SLURM_JOB_NODELIST": "n1", "SLURM_TASKS_PER_NODE": "1",
            "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}
  assert not cluster_lib.from_environment(single).is_multi_worker


@pytest.mark.parametrize("changes,message", [
    ({"SLURM_TASKS_PER_NODE": "2(x3)"}, "2 nodes but tasks per node for 3"),
    ({"SLURM_NTASKS": "5"}, "add up to 4, not SLURM_NTASKS=5"),
    ({"SLURM_PROCID": "4"}, "SLURM_PROCID=4 is out of range"),
    ({"SLURM_JOB_NODELIST": "gpu[07-"}, "cannot read the Slurm host list"),
    ({"SLURM_TASKS_PER_NODE": "two"}, "cannot read SLURM_TASKS_PER_NODE"),
    ({"SLURM_JOB_NODELIST": ""}, "without SLURM_JOB_NODELIST"),
    ({"SLURM_LOCALID": "0"}, "Slurm placed task 3 on gpu08 as local task 0,"
     " not where -m block puts it (gpu08, local task 1); use -m block,"
     " cyclic or plane=N, or set TF_CONFIG."),
    ({"SLURM_DISTRIBUTION": "arbitrary"}, "srun's task distribution"
     " 'arbitrary' is not supported; use -m block, cyclic or plane=N, or set"
     " TF_CONFIG."),
    ({"SLURM_DISTRIBUTION": "plane"}, "cannot read the plane size"),
])
def test_inconsistent_slurm_environment(changes, message):
  with pytest.raises(ConfigError, match=re.escape(message)):
    cluster_lib.from_environment(dict(SLURM_2X2, **changes))


@pytest.mark.parametrize("tasks,distribution,plane,expected", [
    ([2, 2], "block", 1, [(0, 0), (0, 1), (1, 0), (1, 1)]),
    ([2, 2], "cyclic", 1, [(0, 0), (1, 0), (0, 1), (1, 1)]),
    ([2, 1], "cyclic", 1, [(0, 0), (1, 0), (0, 1)]),
    ([3, 1], "cyclic", 1, [(0, 0), (1, 0), (0, 1), (0, 2)]),
    ([4, 4], "plane", 2, [(0, 0), (0, 1), (1, 0), (1, 1),
                          (0, 2), (0, 3), (1, 2), (1, 3)]),
    ([3, 2], "plane", 2, [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]),
])
def test_slurm_task_placement(tasks, distribution, plane, expected):
  assert cluster_lib.place_tasks(tasks, distribution, plane) == expected


@pytest.mark.parametrize("distribution,rank,node,local,addresses", [
    ("cyclic", 1, "gpu08", "0",
     ("gpu07:8888", "gpu08:8888", "gpu07:8889", "gpu08:8889")),
    ("cyclic:block", 2, "gpu07", "1",
     ("gpu07:8888", "gpu08:8888", "gpu07:8889", "gpu08:8889")),
    ("plane=2", 2, "gpu08", "0",
     ("gpu07:8888", "gpu07:8889", "gpu08:8888", "gpu08:8889")),
])
def test_slurm_distributions_map_ranks_to_their_hosts(distribution, rank, node,
                                                      local, addresses):
  environ = dict(SLURM_2X2, SLURM_DISTRIBUTION=distribution,
                 SLURM_PROCID=str(rank), SLURMD_NODENAME=node,
                 SLURM_LOCALID=local)
  info = cluster_lib.from_environment(environ)
  assert info.cluster == {"worker": addresses}
  assert info.task_index == rank


def test_the_batch_script_of_a_multi_task_job_is_refused():
  batch = {key: value for key, value in SLURM_2X2.items()
           if key != "SLURM_STEP_ID"}
  with pytest.raises(ConfigError, match="^this is the batch script of a Slurm"
                     " job of 4 tasks, not one of its tasks; start the workers"
                     " with srun"):
    cluster_lib.from_environment(dict(batch, SLURM_PROCID="0"))
