"""How each process uses its GPUs: memory, collectives, input. Pure choices.

`choose_memory_policy`, `choose_collectives` and `choose_input_placement`
are functions of plain values (the option, the strategy kind, the number of
GPUs and of processes on the node) and return frozen dataclasses of plain
strings and numbers, each with one sentence for the log, so they are tested
without TensorFlow. `apply_memory_policy`, `build_collective_kwargs` and
`build_input_options` turn a choice into TensorFlow calls; they import
TensorFlow inside. Without GPUs every choice is TensorFlow's default, so CPU
runs do not change. Which GPUs a process sees is `launch.distributed.devices`.
"""

from collections.abc import Mapping
import dataclasses
import os

from absl import logging

from launch.distributed import cluster as cluster_lib
from launch.distributed import devices
from launch.errors import ConfigError, flag

MEMORY_MODES = ("auto", "growth", "all")
# Gradient pack of the multi-worker NCCL all-reduce. With 0 TensorFlow
# concatenates all gradients into one all-reduce that starts after the whole
# backward pass; packs of this size (last layers first) start reducing while
# earlier layers still compute their gradients. Same order as PyTorch DDP's
# 25 MiB buckets, Horovod's 64 MiB fusion buffer and the 50 MiB of
# TensorFlow's CommunicationOptions example; a model with fewer bytes of
# gradients (the MLP and CNN here) still makes one pack.
NCCL_BYTES_PER_PACK = 32 * 1024 * 1024
# Per-replica batches held on each GPU ahead of the step: one being consumed,
# one in flight, so a slow host batch does not stall the device at once.
DEVICE_PREFETCH_BATCHES = 2

_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "ip6-localhost")


def processes_on_host(cluster: cluster_lib.ClusterInfo) -> int:
  """Tasks of the cluster (evaluator included) on this task's host."""
  if not cluster.cluster or cluster.task_type is None:
    return 1

  def host(address: str) -> str:
    name = address.rsplit(":", 1)[0].strip("[]").lower()
    return "localhost" if name in _LOOPBACK_HOSTS else name

  mine = host(cluster.cluster[cluster.task_type][cluster.task_index])
  return sum(host(address) == mine
             for addresses in cluster.cluster.values()
             for address in addresses)


@dataclasses.dataclass(frozen=True)
class MemoryPolicy:
  """How a process takes GPU memory.

  Attributes:
    mode: "growth" (as needed), "all" (TensorFlow's default: nearly all of
      each GPU up front) or "limit" (at most `limit_mb` per GPU).
    limit_mb: The limit of mode "limit".
    description: One sentence for the log.
  """

  mode: str
  limit_mb: int | None = None
  description: str = ""


def choose_memory_policy(option: str, *, processes_on_node: int,
                         environ: Mapping[str, str] | None = None
                         ) -> MemoryPolicy:
  """Resolves `--gpu_memory` (auto, growth, all, or a limit in MB).

  auto is growth when more than one process of the run uses this node (so a
  second process is not starved by the first one's allocation), else all.
  TensorFlow lets TF_FORCE_GPU_ALLOW_GROWTH=true/false override the choice,
  so auto follows that variable and an explicit mode must agree with it.

  Raises:
    ConfigError: If the option is malformed or contradicts the variable.
  """
  value = option.strip().lower()
  if value not in MEMORY_MODES and not (value.isdigit() and int(value) > 0):
    raise ConfigError(f"{flag('gpu_memory')}={option} must be auto, growth, all"
                      " or a per-GPU limit in MB such as 8000.")
  forced = (environ or {}).get("TF_FORCE_GPU_ALLOW_GROWTH", "").strip().lower()
  if value.isdigit():
    return MemoryPolicy("limit", int(value), f"GPU memory: at most {value} MB"
                        f" per GPU (--gpu_memory={value}).")
  if forced in ("true", "false"):
    if value != "auto" and (value == "growth") != (forced == "true"):
      raise ConfigError(f"{flag('gpu_memory')}={value} contradicts"
                        f" TF_FORCE_GPU_ALLOW_GROWTH={forced}; unset the"
                        " variable or change the flag.")
    reason = f"TF_FORCE_GPU_ALLOW_GROWTH={forced}"
    value = "growth" if forced == "true" else "all"
  elif value == "auto":
    count = max(1, processes_on_node)
    value = "growth" if count > 1 else "all"
    reason = (f"{count} processes of this run on this node" if count > 1
              else "one process of this run on this node")
    reason += "; --gpu_memory=auto"
  else:
    reason = f"--gpu_memory={value}"
  what = ("growth, allocated as needed" if value == "growth" else
          "all, nearly all of each GPU taken up front")
  return MemoryPolicy(value, None, f"GPU memory: {what} ({reason}).")


@dataclasses.dataclass(frozen=True)
class Collectives:
  """The all-reduce of a strategy, as plain values.

  Attributes:
    implementation: Its name for the log: "NCCL", "RING" or "none".
    communication: MultiWorkerMirroredStrategy: the
      `tf.distribute.experimental.CommunicationImplementation` member name;
      None for the other strategies.
    cross_device_ops: MirroredStrategy: the `tf.distribute` class to pass as
      `cross_device_ops`; None keeps TensorFlow's default.
    bytes_per_pack: MultiWorkerMirroredStrategy's
      `CommunicationOptions.bytes_per_pack`; 0 is TensorFlow's default (one
      pack of all gradients).
    description: One sentence for the log.
  """

  implementation: str
  communication: str | None = None
  cross_device_ops: str | None = None
  bytes_per_pack: int = 0
  description: str = ""


def choose_collectives(kind: str, *, num_gpus: int,
                       jit_compile: bool = False) -> Collectives:
  """The all-reduce for strategy `kind` with `num_gpus` GPUs per process.

  TensorFlow 2.21's defaults, read in its source: MultiWorkerMirroredStrategy
  uses the AUTO hint, which the collective runtime resolves to RING unless
  NCCL is requested, so on GPUs multi_worker asks for NCCL (gradients in
  packs of NCCL_BYTES_PER_PACK, to overlap the backward pass).
  MirroredStrategy already uses NCCL on physical GPUs (a CollectiveAllReduce
  with CommunicationImplementation.NCCL, one pack); passing NcclAllReduce
  only swaps that for TensorFlow's older nccl_ops all-reduce, still one
  pack (unmeasured: no GPU here). On CPUs the defaults already are RING
  (ring all-reduce over logical CPUs, not ReductionToOneDevice);
  multi_worker names RING, which is what AUTO picks there, and mirrored
  passes nothing, so CPU runs do not change.

  Args:
    kind: "one_device", "mirrored" or "multi_worker" (resolved, not auto).
    num_gpus: GPUs this process sees.
    jit_compile: Whether the step is compiled with XLA: MirroredStrategy
      then always uses its own collective ops and ignores cross_device_ops.

  Raises:
    ValueError: If `kind` is not a resolved strategy kind.
  """
  if kind == "one_device":
    return Collectives("none", description="Collectives: none (one replica).")
  gpus = devices.plural(num_gpus, "GPU")
  if kind == "multi_worker" and num_gpus:
    return Collectives(
        "NCCL", communication="NCCL", bytes_per_pack=NCCL_BYTES_PER_PACK,
        description=f"Collectives: NCCL all-reduce across the workers ({gpus}"
        f" each), gradients in packs of {NCCL_BYTES_PER_PACK >> 20} MiB so"
        " the all-reduce overlaps the backward pass.")
  if kind == "multi_worker":
    return Collectives("RING", communication="RING",
                       description="Collectives: RING all-reduce across the"
                       " workers (CPUs).")
  if kind != "mirrored":
    raise ValueError(f"unknown strategy kind {kind!r}")
  if num_gpus and jit_compile:
    return Collectives("NCCL", description=f"Collectives: XLA's all-reduce"
                       f" (NCCL on GPUs) over the {gpus}; under --jit_compile"
                       " MirroredStrategy ignores cross_device_ops.")
  if num_gpus:
    return Collectives("NCCL", cross_device_ops="NcclAllReduce",
                       description=f"Collectives: NCCL all-reduce over the"
                       f" {gpus} (NcclAllReduce, gradients in one pack).")
  return Collectives("RING", description="Collectives: RING all-reduce over"
                     " the logical CPU devices (TensorFlow's default).")


@dataclasses.dataclass(frozen=True)
class InputPlacement:
  """Where the distributed input iterator leaves each batch.

  Attributes:
    fetch_to_device: `InputOptions.experimental_fetch_to_device`; None keeps
      TensorFlow's default.
    per_replica_buffer_size: `experimental_per_replica_buffer_size`; None
      keeps TensorFlow's default (1).
    description: One sentence for the log; "" when nothing changes.
  """

  fetch_to_device: bool | None = None
  per_replica_buffer_size: int | None = None
  description: str = ""

  def input_options_kwargs(self) -> dict[str, object]:
    """Keyword arguments for `tf.distribute.InputOptions`; {}: defaults."""
    kwargs = {}
    if self.fetch_to_device is not None:
      kwargs["experimental_fetch_to_device"] = self.fetch_to_device
    if self.per_replica_buffer_size is not None:
      kwargs["experimental_per_replica_buffer_size"] = (
          self.per_replica_buffer_size)
    return kwargs


def choose_input_placement(*, num_gpus: int) -> InputPlacement:
  """Batches are copied to each GPU ahead of the step; CPUs keep defaults.

  The pipeline builds batches on the host (gather from the split decoded
  once, prefetch); on GPUs the distributed iterator then copies each
  replica's batch into that GPU's memory DEVICE_PREFETCH_BATCHES steps
  ahead, so the host-to-device copy overlaps the running step.
  """
  if not num_gpus:
    return InputPlacement()
  return InputPlacement(
      True, DEVICE_PREFETCH_BATCHES,
      f"Input: batches are built on the host and copied to each GPU"
      f" up to {DEVICE_PREFETCH_BATCHES} steps ahead (InputOptions"
      " experimental_fetch_to_device, per-replica buffer"
      f" {DEVICE_PREFETCH_BATCHES}), so the copy overlaps compute.")


def memory_in_effect(*, growth: bool, limit_mb: int | None) -> MemoryPolicy:
  """The policy a GPU's settings amount to (its growth flag, its limit)."""
  if limit_mb is not None:
    return MemoryPolicy("limit", int(limit_mb))
  return MemoryPolicy("growth" if growth else "all")


def _spelled(policy: MemoryPolicy) -> str:
  return str(policy.limit_mb) if policy.mode == "limit" else policy.mode


def needs_memory_change(policy: MemoryPolicy, *, in_effect: MemoryPolicy,
                        is_started: bool) -> bool:
  """Whether `policy` must still be applied to GPUs set to `in_effect`.

  TensorFlow fixes a process's GPU memory settings when its runtime starts
  (the first op, or the first strategy): a second `fit` in a notebook, or a
  run after the user's own TensorFlow code, can only keep them.

  Raises:
    ConfigError: If the runtime started with other settings.
  """
  if (policy.mode, policy.limit_mb) == (in_effect.mode, in_effect.limit_mb):
    return False
  if is_started:
    raise ConfigError(
        f"{flag('gpu_memory')}={_spelled(policy)} cannot take effect:"
        " TensorFlow"
        f" already set up this process's GPUs with {_spelled(in_effect)}"
        " (once per process, at its first op or strategy); pass"
        f" {flag('gpu_memory')}={_spelled(in_effect)}, or run this before any"
        " other"
        " TensorFlow code in a new process (restart the notebook's kernel).")
  return True


def apply_memory_policy(policy: MemoryPolicy) -> int:
  """Configures every visible GPU as `policy` says and logs it.

  Must run before TensorFlow's runtime starts (like
  `strategy.configure_cpu_devices`); afterwards only the settings in
  effect can be kept. A no-op without GPUs.

  Returns:
    The number of GPUs configured.

  Raises:
    ConfigError: If the runtime already started with other settings.
  """
  import tensorflow as tf  # Only once the flags are validated.
  from trainer import private_apis  # pylint: disable=import-outside-toplevel
  gpus = tf.config.list_physical_devices("GPU")
  if not gpus:
    return 0
  logical = tf.config.get_logical_device_configuration(gpus[0]) or []
  limits = [c.memory_limit for c in logical if c.memory_limit is not None]
  # TensorFlow's own variable turns growth on without the Python flag.
  forced = os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH", "").strip().lower()
  in_effect = memory_in_effect(
      growth=(bool(tf.config.experimental.get_memory_growth(gpus[0]))
              or forced == "true"),
      limit_mb=limits[0] if limits else None)
  is_started = private_apis.runtime_started()
  if not needs_memory_change(policy, in_effect=in_effect,
                             is_started=is_started):
    if not is_started:  # This process's first, and only, choice.
      logging.info("%s", policy.description)
    return len(gpus)
  for gpu in gpus:
    if policy.mode == "limit":
      tf.config.set_logical_device_configuration(
          gpu, [tf.config.LogicalDeviceConfiguration(
              memory_limit=policy.limit_mb)])
    else:  # "all" switches growth off again (TensorFlow's default).
      tf.config.experimental.set_memory_growth(gpu, policy.mode == "growth")
  logging.info("%s", policy.description)
  return len(gpus)


def build_collective_kwargs(collectives: Collectives) -> dict[str, object]:
  """The strategy constructor's keyword arguments for `collectives`.

  `communication_options` for MultiWorkerMirroredStrategy,
  `cross_device_ops` for MirroredStrategy, {} for TensorFlow's default.
  """
  import tensorflow as tf
  if collectives.communication is not None:
    implementation = getattr(
        tf.distribute.experimental.CommunicationImplementation,
        collectives.communication)
    return {"communication_options":
            tf.distribute.experimental.CommunicationOptions(
                bytes_per_pack=collectives.bytes_per_pack,
                implementation=implementation)}
  if collectives.cross_device_ops is not None:
    cross_device_ops = getattr(tf.distribute, collectives.cross_device_ops)
    return {"cross_device_ops": cross_device_ops(num_packs=1)}
  return {}


def build_input_options(placement: InputPlacement):
  """`tf.distribute.InputOptions` for `placement`, or None for defaults."""
  kwargs = placement.input_options_kwargs()
  if not kwargs:
    return None
  import tensorflow as tf
  return tf.distribute.InputOptions(**kwargs)
