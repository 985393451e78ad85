"""Choosing and building the `tf.distribute` strategy.

`resolve_strategy_kind` and `count_replicas` are pure, so the choice can be
validated (and tested) before TensorFlow creates anything. `build_strategy`
must run before any other TensorFlow op in the process: logical CPU devices
and MultiWorkerMirroredStrategy both refuse to be set up afterwards.
"""

import contextlib
import os

from absl import logging

from launch.distributed import cluster as cluster_lib
from launch.distributed import devices
from launch.distributed import gpu_usage
from launch.distributed import placement
from launch.errors import ConfigError, flag

STRATEGY_KINDS = ("auto", "one_device", "mirrored", "multi_worker")


def resolve_strategy_kind(requested: str, *, cluster: cluster_lib.ClusterInfo,
                          num_gpus: int, cpu_devices: int) -> str:
  """Turns `auto` into a concrete kind and checks the others fit the machine.

  `auto`: multi_worker when the cluster has several training tasks, mirrored
  over 2+ GPUs (or over `cpu_devices` >= 2 logical CPUs when there is no GPU),
  otherwise one_device.

  Raises:
    ConfigError: If the requested kind contradicts the cluster.
  """
  if requested not in STRATEGY_KINDS:
    raise ConfigError(f"{flag('strategy')}={requested} is not one of"
                      f" {', '.join(STRATEGY_KINDS)}.")
  if requested == "auto":
    if cluster.is_multi_worker:
      return "multi_worker"
    local = num_gpus if num_gpus else cpu_devices
    return "mirrored" if local >= 2 else "one_device"
  if cluster.is_multi_worker and requested != "multi_worker":
    raise ConfigError(f"TF_CONFIG names {cluster.num_workers} training tasks,"
                      f" which needs {flag('strategy')}=multi_worker (or auto),"
                      f" not {requested}.")
  if requested == "one_device" and cpu_devices > 1 and not num_gpus:
    raise ConfigError(f"{flag('strategy')}=one_device cannot use"
                      f" {flag('cpu_devices')}="
                      f"{cpu_devices}; use {flag('strategy')}=mirrored.")
  return requested


def local_device_names(*, num_gpus: int, cpu_devices: int) -> list[str]:
  """The devices one worker mirrors over: its GPUs, else its logical CPUs."""
  if num_gpus:
    return [f"/gpu:{index}" for index in range(num_gpus)]
  return [f"/cpu:{index}" for index in range(max(1, cpu_devices))]


def count_replicas(kind: str, *, cluster: cluster_lib.ClusterInfo,
                   num_gpus: int, cpu_devices: int) -> int:
  """Number of replicas in sync the strategy `kind` will have."""
  if kind == "one_device":
    return 1
  local = len(local_device_names(num_gpus=num_gpus, cpu_devices=cpu_devices))
  return local * (cluster.num_workers if kind == "multi_worker" else 1)


def configure_cpu_devices(cpu_devices: int) -> None:
  """Splits the physical CPU into `cpu_devices` logical devices (if > 1).

  A no-op when the CPU is already split into at least that many (a test
  process splits it once, for its largest strategy).

  Raises:
    RuntimeError: If TensorFlow already ran ops with fewer devices.
  """
  import tensorflow as tf  # Imported only once the inputs are validated.
  if cpu_devices <= 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  existing = tf.config.get_logical_device_configuration(cpu) or []
  if len(existing) >= cpu_devices:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
  except RuntimeError:
    raise ConfigError(
        f"{flag('cpu_devices')}={cpu_devices} cannot take effect: TensorFlow in"
        f" this process already runs on {max(1, len(existing))} CPU device(s)"
        " and splits the CPU once per process; use at most that many, or"
        " restart the process (the notebook's kernel).") from None


def _build_multi_worker(cluster: cluster_lib.ClusterInfo, *, num_gpus: int,
                        cpu_devices: int, collectives: dict):
  import tensorflow as tf
  resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      # Only training tasks join the collectives; an evaluator runs apart.
      tf.train.ClusterSpec({role: list(addresses)
                            for role, addresses in cluster.cluster.items()
                            if role in cluster_lib.TRAINING_ROLES}),
      task_type=cluster.task_type, task_id=cluster.task_index,
      num_accelerators={"GPU": num_gpus}, rpc_layer="grpc")
  # No `timeout_seconds`: TensorFlow keeps a sleeping thread per collective
  # for the whole timeout (a thread leak that ends every long run); a stuck
  # peer is caught by `trainer.watchdog` instead.
  options = collectives.get("communication_options",
                            tf.distribute.experimental.CommunicationOptions())
  devices = local_device_names(num_gpus=0, cpu_devices=cpu_devices)
  try:
    from trainer import private_apis
    with (private_apis.multi_worker_local_devices(devices)
          if not num_gpus and cpu_devices > 1 else contextlib.nullcontext()):
      return tf.distribute.MultiWorkerMirroredStrategy(
          cluster_resolver=resolver, communication_options=options)
  except tf.errors.UnknownError as error:
    if "Could not start gRPC server" not in str(error):
      raise
    # The port was free at the rendezvous and taken just after.
    raise ConfigError(f"{cluster.task_type}:{cluster.task_index} could not"
                      " open its port (another process took it); give it"
                      " another port.") from None


# Strategies built in this process, by what they were built from: a second
# `fit` in one process (a notebook) reuses its strategy, so collective keys
# keep counting (a new strategy would restart them and clash with the
# first's) and a multi-worker server is not started twice.
_BUILT: dict = {}


def get_strategy(kind: str, *, cluster: cluster_lib.ClusterInfo,
                 cpu_devices: int,
                 gpu_memory: gpu_usage.MemoryPolicy | None = None,
                 jit_compile: bool = False, meet=lambda: 0.0,
                 deadline=None):
  """The strategy `kind`: built once per process, then reused.

  Args:
    kind: "one_device", "mirrored" or "multi_worker".
    cluster: The validated cluster.
    cpu_devices: Logical CPU devices per process when there is no GPU.
    gpu_memory: How this process takes GPU memory (None: all of it).
    jit_compile: Whether the step is compiled with XLA.
    meet: Called before a new strategy is built (the workers' rendezvous);
      returns the seconds the build may take (0: no limit).
    deadline: `deadline(seconds)` context manager bounding the build.

  Raises:
    ConfigError: If this process cannot build it (another cluster joined
      already, or the CPU split cannot change any more).
  """
  key = (kind, repr(sorted(cluster.cluster.items())), cluster.task_type,
         cluster.task_index, cpu_devices, jit_compile)
  if key in _BUILT:
    if gpu_memory is not None:  # Keeps the settings in effect, or says so.
      gpu_usage.apply_memory_policy(gpu_memory)
    return _BUILT[key]
  if kind == "multi_worker" and any(k[0] == "multi_worker" for k in _BUILT):
    raise ConfigError("this process already joined a multi-worker cluster"
                      " with other settings; a process joins one cluster,"
                      " start a new process for another.")
  from trainer import private_apis  # pylint: disable=import-outside-toplevel
  if kind == "multi_worker" and private_apis.runtime_started():
    raise ConfigError(
        "this process cannot join a multi-worker cluster: TensorFlow's"
        " runtime already started here (a TensorFlow op ran before fit, or"
        f" in a {flag('dataset')} function), and its collectives are set up"
        " once, at"
        " start-up; run no TensorFlow op before fit, in a new process.")
  seconds = meet()
  with (deadline(seconds) if deadline else contextlib.nullcontext()):
    strategy = build_strategy(kind, cluster=cluster, cpu_devices=cpu_devices,
                              gpu_memory=gpu_memory, jit_compile=jit_compile)
  _BUILT[key] = strategy
  return strategy


# The names users know: MultiWorkerMirroredStrategy's class is called
# CollectiveAllReduceStrategy.
STRATEGY_NAMES = {"one_device": "OneDeviceStrategy",
                  "mirrored": "MirroredStrategy",
                  "multi_worker": "MultiWorkerMirroredStrategy"}


def build_strategy(kind: str, *, cluster: cluster_lib.ClusterInfo,
                   cpu_devices: int,
                   gpu_memory: gpu_usage.MemoryPolicy | None = None,
                   jit_compile: bool = False):
  """Builds the strategy `kind` (already resolved, not `auto`).

  Args:
    kind: "one_device", "mirrored" or "multi_worker".
    cluster: The validated cluster.
    cpu_devices: Logical CPU devices per process when there is no GPU.
    gpu_memory: How this process takes GPU memory (None: all of it).
    jit_compile: Whether the step is compiled with XLA.

  Returns:
    The strategy.
  """
  import tensorflow as tf
  num_gpus = len(tf.config.list_physical_devices("GPU"))
  if num_gpus and gpu_memory is not None:
    gpu_usage.apply_memory_policy(gpu_memory)
  if not num_gpus:
    configure_cpu_devices(cpu_devices)
  collectives = gpu_usage.choose_collectives(kind, num_gpus=num_gpus,
                                             jit_compile=jit_compile)
  options = gpu_usage.build_collective_kwargs(collectives)
  if kind == "multi_worker":
    strategy = _build_multi_worker(cluster, num_gpus=num_gpus,
                                   cpu_devices=cpu_devices,
                                   collectives=options)
  elif kind == "mirrored":
    from trainer import private_apis
    private_apis.fresh_collective_keys()
    strategy = tf.distribute.MirroredStrategy(
        local_device_names(num_gpus=num_gpus, cpu_devices=cpu_devices),
        **options)
  else:
    strategy = tf.distribute.OneDeviceStrategy(
        local_device_names(num_gpus=num_gpus, cpu_devices=1)[0])
  logging.info("Strategy %s with %d replica(s); %s; %s.",
               STRATEGY_NAMES[kind], strategy.num_replicas_in_sync,
               cluster.describe(), "chief" if cluster.is_chief else "not chief")
  logging.info("%s", collectives.description)
  _log_gpus_seen(num_gpus)
  return strategy


def _log_gpus_seen(num_gpus: int) -> None:
  """Logs the GPUs TensorFlow sees against those given; warns if they differ."""
  environ = os.environ
  seen = placement.compare_gpus_seen(
      devices.parse_visible_devices(
          environ.get(devices.VISIBLE_DEVICES),
          num_node_gpus=devices.node_gpus_if_unlisted(environ)),
      num_seen=num_gpus, is_listed=devices.VISIBLE_DEVICES in environ)
  if seen.description:
    logging.info("%s", seen.description)
  if seen.warning:
    logging.warning("%s", seen.warning)
