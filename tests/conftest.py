"""Test setup: one TF process split into 4 logical CPUs, shared by all tests.

Logical devices must be configured before TensorFlow runs any op, so this is
done once at import, with the largest device count any test needs; tests
build strategies over 1, 2 or 4 of them.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

NUM_CPU_DEVICES = 4

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_CPU_DEVICES)




def use_fresh_collective_keys() -> None:
  """Gives the next MirroredStrategy its own collective group keys.

  Every MirroredStrategy numbers its collective groups from 1, so two
  strategies of different sizes in one process collide ("joining a group
  with size 4, but that group has size 2"). TensorFlow's own tests offset
  the numbering through this class attribute; a real run has one strategy.
  """
  from trainer import private_apis  # The harness's one counter.
  private_apis.fresh_collective_keys()


@pytest.fixture(autouse=True)
def _fresh_collective_keys():
  use_fresh_collective_keys()


def make_strategy(num_replicas: int) -> tf.distribute.Strategy:
  """OneDeviceStrategy for 1, MirroredStrategy over N logical CPUs else."""
  use_fresh_collective_keys()
  if num_replicas == 1:
    return tf.distribute.OneDeviceStrategy("/cpu:0")
  return tf.distribute.MirroredStrategy(
      [f"/cpu:{index}" for index in range(num_replicas)])


@pytest.fixture(params=[1, 2, 4], ids=lambda n: f"{n}replicas")
def strategy(request) -> tf.distribute.Strategy:
  return make_strategy(request.param)
