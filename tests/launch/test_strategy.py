import pytest

from launch.distributed import cluster as cluster_lib
from launch.distributed import strategy as strategy_lib
from launch.errors import ConfigError

SINGLE = cluster_lib.ClusterInfo()
TWO_WORKERS = cluster_lib.ClusterInfo(
    {"worker": ("localhost:1", "localhost:2")}, "worker", 0)


@pytest.mark.parametrize("requested,cluster,gpus,cpus,expected", [
    ("auto", SINGLE, 0, 1, "one_device"),
    ("auto", SINGLE, 0, 4, "mirrored"),
    ("auto", SINGLE, 1, 1, "one_device"),
    ("auto", SINGLE, 8, 1, "mirrored"),
    ("auto", TWO_WORKERS, 0, 1, "multi_worker"),
    ("auto", TWO_WORKERS, 8, 1, "multi_worker"),
    ("mirrored", SINGLE, 0, 1, "mirrored"),
    ("one_device", SINGLE, 4, 1, "one_device"),
    ("multi_worker", SINGLE, 0, 1, "multi_worker"),
])
def test_resolve_strategy_kind(requested, cluster, gpus, cpus, expected):
  assert strategy_lib.resolve_strategy_kind(
      requested, cluster=cluster, num_gpus=gpus, cpu_devices=cpus) == expected


@pytest.mark.parametrize("requested,cluster,cpus,message", [
    ("mirrored", TWO_WORKERS, 1, "needs --strategy=multi_worker"),
    ("one_device", SINGLE, 4, "cannot use --cpu_devices=4"),
    ("tpu", SINGLE, 1, "is not one of"),
])
def test_resolve_strategy_kind_rejects_contradictions(requested, cluster, cpus,
                                                      message):
  with pytest.raises(ConfigError, match=message):
    strategy_lib.resolve_strategy_kind(requested, cluster=cluster, num_gpus=0,
                                       cpu_devices=cpus)


@pytest.mark.parametrize("kind,cluster,gpus,cpus,expected", [
    ("one_device", SINGLE, 8, 1, 1),
    ("mirrored", SINGLE, 0, 4, 4),
    ("mirrored", SINGLE, 8, 4, 8),
    ("multi_worker", TWO_WORKERS, 0, 1, 2),
    ("multi_worker", TWO_WORKERS, 0, 2, 4),
    ("multi_worker", TWO_WORKERS, 4, 1, 8),
])
def test_count_replicas(kind, cluster, gpus, cpus, expected):
  assert strategy_lib.count_replicas(kind, cluster=cluster, num_gpus=gpus,
                                     cpu_devices=cpus) == expected


@pytest.mark.parametrize("kind,cpus,replicas,type_name", [
    ("one_device", 1, 1, "OneDeviceStrategy"),
    ("mirrored", 2, 2, "MirroredStrategy"),
    ("mirrored", 4, 4, "MirroredStrategy"),
])
def test_build_strategy_over_logical_cpus(kind, cpus, replicas, type_name):
  strategy = strategy_lib.build_strategy(kind, cluster=SINGLE,
                                         cpu_devices=cpus)
  assert type(strategy).__name__ == type_name
  assert strategy.num_replicas_in_sync == replicas


def test_multi_worker_after_the_runtime_started_is_one_sentence():
  # This pytest process ran TensorFlow ops already (conftest's CPU split),
  # as a notebook does before `fit`: TensorFlow would raise "Collective ops
  # must be configured at program startup" from the strategy's constructor.
  import tensorflow as tf
  tf.constant(1.0)
  met = []
  with pytest.raises(ConfigError) as error:
    strategy_lib.get_strategy("multi_worker", cluster=TWO_WORKERS,
                              cpu_devices=1, meet=lambda: met.append(1) or 0)
  assert str(error.value) == (
      "this process cannot join a multi-worker cluster: TensorFlow's runtime"
      " already started here (a TensorFlow op ran before fit, or in a"
      " --dataset function), and its collectives are set up once, at"
      " start-up; run no TensorFlow op before fit, in a new process.")
  assert not met  # Refused before meeting the other workers.
