"""Which GPUs each process of a run sees: pure placement decisions.

`launch.local` and Slurm start several processes on one node; left alone,
each sees every GPU, mirrors over all of them and TensorFlow's first process
takes their memory. These functions give each process its share through its
own CUDA_VISIBLE_DEVICES, as torchrun's local ranks do:

* `place_local_workers` / `local_worker_gpus`: `launch.local`'s split of the
  node's visible GPUs; worker i gets the i-th contiguous block.
* `slurm_task_gpus`: the GPUs of one `srun` task when Slurm did not bind
  GPUs to tasks (the rule is in its docstring).

They take plain values (device ids, counts, the environment as a Mapping)
and never read `os.environ`; only `count_node_gpus` looks at the machine.
With no GPU visible they change nothing, so CPU runs behave as before.
How a process then uses its GPUs (memory, collectives, input) is
`launch.distributed.gpu_usage`.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import os
import re
import shutil
import subprocess

from launch.distributed import cluster as cluster_lib
from launch.errors import ConfigError

VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
_GPU_INDEX = re.compile(r"[0-9]+")
_GPU_UUID_PREFIXES = ("GPU-", "MIG-")


def parse_visible_devices(value: str | None, *,
                          num_node_gpus: int) -> list[str]:
  """The GPUs a CUDA_VISIBLE_DEVICES value makes visible, as CUDA reads it.

  Unset (None) means every GPU of the node: "0" ... "num_node_gpus - 1".
  Otherwise the comma-separated entries are kept as written (indices, or
  GPU-/MIG- UUIDs), never renumbered, up to the first entry CUDA rejects:
  "" and "-1" hide every GPU, "0,2,-1,1" shows 0 and 2, and Slurm's
  "NoDevFiles" shows none.

  Args:
    value: The variable's value, or None when it is unset.
    num_node_gpus: GPUs of the node (`count_node_gpus()`); used when unset.

  Returns:
    The visible GPU ids, in CUDA's order.

  Raises:
    ConfigError: If a GPU is listed twice.
  """
  if value is None:
    return [str(index) for index in range(num_node_gpus)]
  devices = []
  for entry in (part.strip() for part in value.split(",")):
    if not (_GPU_INDEX.fullmatch(entry)
            or entry.startswith(_GPU_UUID_PREFIXES)):
      break  # CUDA ignores this entry and every one after it.
    if entry in devices:
      raise ConfigError(f"{VISIBLE_DEVICES}={value} lists GPU {entry} twice;"
                        " list each GPU once.")
    devices.append(entry)
  return devices


def count_node_gpus(*, proc_dir: str = "/proc/driver/nvidia/gpus",
                    nvidia_smi: str = "nvidia-smi") -> int:
  """NVIDIA GPUs of this node, found without starting CUDA.

  Asking TensorFlow would initialise CUDA, after which CUDA_VISIBLE_DEVICES
  no longer applies. Reads the driver's `proc_dir` (one entry per GPU), else
  `nvidia-smi -L`; 0 without an NVIDIA driver, as on a CPU machine.
  """
  try:
    return len(os.listdir(proc_dir))
  except OSError:
    pass
  path = shutil.which(nvidia_smi)
  if not path:
    return 0
  try:
    listing = subprocess.run([path, "-L"], capture_output=True, text=True,
                             timeout=60, check=False).stdout
  except (OSError, subprocess.SubprocessError):
    return 0
  return sum(line.startswith("GPU ") for line in listing.splitlines())


def node_gpus_if_unlisted(environ: Mapping[str, str]) -> int:
  """`count_node_gpus()`, needed only when CUDA_VISIBLE_DEVICES is unset."""
  return 0 if VISIBLE_DEVICES in environ else count_node_gpus()


def ids(devices: Sequence[str]) -> str:
  """E.g. "0,1"; "none" for no GPU."""
  return ",".join(devices) or "none"


def plural(count: int, noun: str) -> str:
  """E.g. "1 GPU", "2 GPUs"."""
  return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _largest_divisor(number: int, at_most: int) -> int:
  return max(d for d in range(1, min(number, at_most) + 1) if number % d == 0)


def local_worker_gpus(visible: Sequence[str], num_workers: int,
                      gpus_per_worker: int | None = None) -> list[list[str]]:
  """Splits the visible GPUs into contiguous blocks, one per local worker.

  Worker i gets `visible[i * k:(i + 1) * k]` with k = `gpus_per_worker`,
  by default len(visible) / num_workers (torchrun's local ranks). With
  k * num_workers < len(visible) the last GPUs stay unused; with k = 0 the
  workers run on CPUs. Without visible GPUs every worker gets [].

  Raises:
    ConfigError: If the GPUs do not divide evenly, or k * num_workers
      exceeds the visible GPUs.
  """
  if num_workers < 1:
    raise ConfigError(f"--workers={num_workers} must be positive.")
  if gpus_per_worker is not None and gpus_per_worker < 0:
    raise ConfigError(f"--gpus_per_worker={gpus_per_worker} must be zero or"
                      " more.")
  count = len(visible)
  if not count or gpus_per_worker == 0:
    return [[] for _ in range(num_workers)]
  if gpus_per_worker is None:
    if count % num_workers:
      fix = (f" or --gpus_per_worker={count // num_workers} (leaving"
             f" {count % num_workers} unused)" if count > num_workers else
             " or --gpus_per_worker=0 to run the workers on CPUs")
      raise ConfigError(
          f"--workers={num_workers} cannot split the"
          f" {plural(count, 'visible GPU')} ({ids(visible)}) evenly; use"
          f" --workers={_largest_divisor(count, num_workers)}{fix}.")
    gpus_per_worker = count // num_workers
  elif gpus_per_worker * num_workers > count:
    fix = (f"--gpus_per_worker={count // num_workers}"
           if count >= num_workers else
           f"--workers={max(1, count // gpus_per_worker)}")
    raise ConfigError(
        f"--gpus_per_worker={gpus_per_worker} for --workers={num_workers}"
        f" needs {gpus_per_worker * num_workers} GPUs but"
        f" {plural(count, 'GPU')} {'is' if count == 1 else 'are'} visible"
        f" ({ids(visible)}); use {fix}.")
  return [list(visible[index * gpus_per_worker:(index + 1) * gpus_per_worker])
          for index in range(num_workers)]


def local_worker_env(worker_gpus: Sequence[str], *,
                     visible: Sequence[str]) -> dict[str, str]:
  """The variables to set for one local worker: {} when no GPU is visible."""
  if not visible:
    return {}
  return {VISIBLE_DEVICES: ",".join(worker_gpus)}


@dataclasses.dataclass(frozen=True)
class LocalPlacement:
  """The GPUs of `launch.local`'s workers.

  Attributes:
    visible: The node's visible GPU ids, as CUDA_VISIBLE_DEVICES names them.
    workers: Each worker's GPUs, in worker order.
    is_user_set: Whether CUDA_VISIBLE_DEVICES was set (not all GPUs).
  """

  visible: tuple[str, ...]
  workers: tuple[tuple[str, ...], ...]
  is_user_set: bool = False

  def env(self, index: int) -> dict[str, str]:
    """Variables to add to worker `index`'s environment."""
    return local_worker_env(self.workers[index], visible=self.visible)

  def describe(self) -> str:
    """One sentence for the supervisor's log; "" without GPUs."""
    if not self.visible:
      return ""
    source = (f"{VISIBLE_DEVICES}={ids(self.visible)}" if self.is_user_set
              else f"all {plural(len(self.visible), 'GPU')} of the node")
    if not any(self.workers):
      return (f"GPUs: --gpus_per_worker=0 hides {source} from the workers;"
              " they run on CPUs.")
    shares = ", ".join(f"worker:{index} gets {ids(gpus)}"
                       for index, gpus in enumerate(self.workers))
    unused = len(self.visible) - sum(len(gpus) for gpus in self.workers)
    tail = f"; {unused} stay unused" if unused else ""
    return f"GPUs ({source}): {shares}{tail}."


def place_local_workers(environ: Mapping[str, str], *, num_workers: int,
                        gpus_per_worker: int | None = None,
                        num_node_gpus: int) -> LocalPlacement:
  """`launch.local`'s placement from its environment and flags.

  Args:
    environ: The supervisor's environment (CUDA_VISIBLE_DEVICES is read).
    num_workers: `--workers`.
    gpus_per_worker: `--gpus_per_worker`; None splits evenly.
    num_node_gpus: `count_node_gpus()`, used when CUDA_VISIBLE_DEVICES is
      unset.

  Raises:
    ConfigError: As `parse_visible_devices` and `local_worker_gpus`.
  """
  value = environ.get(VISIBLE_DEVICES)
  visible = parse_visible_devices(value, num_node_gpus=num_node_gpus)
  workers = local_worker_gpus(visible, num_workers, gpus_per_worker)
  return LocalPlacement(tuple(visible), tuple(map(tuple, workers)),
                        is_user_set=value is not None)


@dataclasses.dataclass(frozen=True)
class TaskPlacement:
  """The GPUs of one Slurm task.

  Attributes:
    gpus: The GPUs the task uses.
    env: Variables to set before TensorFlow starts; {} keeps the task's own.
    description: One sentence for the log; "" without GPUs.
  """

  gpus: tuple[str, ...]
  env: Mapping[str, str]
  description: str


def _slurm_int(environ: Mapping[str, str], name: str) -> int:
  try:
    return int(environ[name])
  except ValueError:
    raise ConfigError(f"{name}={environ[name]} must be an integer.") from None


def slurm_tasks_on_node(environ: Mapping[str, str]) -> int:
  """Tasks Slurm runs on this node: SLURM_(STEP_)TASKS_PER_NODE[NODEID].

  Raises:
    ConfigError: If the variables are malformed or disagree.
  """
  name = ("SLURM_STEP_TASKS_PER_NODE" if environ.get(
      "SLURM_STEP_TASKS_PER_NODE") else "SLURM_TASKS_PER_NODE")
  if not environ.get(name):
    return 1
  counts = cluster_lib.expand_tasks_per_node(environ[name])
  if "SLURM_NODEID" not in environ:
    if len(counts) == 1:
      return counts[0]
    raise ConfigError(f"{name}={environ[name]} lists {len(counts)} nodes but"
                      " SLURM_NODEID is unset; start the tasks with srun.")
  node = _slurm_int(environ, "SLURM_NODEID")
  if not 0 <= node < len(counts):
    raise ConfigError(f"SLURM_NODEID={node} is out of range for the"
                      f" {len(counts)} node(s) of {name}={environ[name]}.")
  return counts[node]


def _slurm_node_gpu_count(environ: Mapping[str, str]) -> int | None:
  """GPUs Slurm gave the step on this node, or None if Slurm did not say."""
  text = environ.get("SLURM_GPUS_ON_NODE", "").strip()
  if text:  # "4"; some sites' wrappers write "a100:4" or "4(S:0-1)".
    match = re.search(r"(\d+)(?:\(.*\))?$", text)
    if match:
      return int(match.group(1))
  job_gpus = environ.get("SLURM_JOB_GPUS", "").strip()
  if job_gpus and job_gpus != "NoDevFiles":
    return len(job_gpus.split(","))
  return None


def slurm_task_gpus(environ: Mapping[str, str], *,
                    num_node_gpus: int) -> TaskPlacement | None:
  """The GPUs of this `srun` task, split by SLURM_LOCALID when Slurm did not.

  The rule, with V this task's visible GPUs (CUDA_VISIBLE_DEVICES; unset:
  all `num_node_gpus`), T the tasks on this node (`slurm_tasks_on_node`),
  L = SLURM_LOCALID and S the GPUs Slurm gave the step on this node
  (SLURM_GPUS_ON_NODE; else the entries of SLURM_JOB_GPUS; else unknown).
  What Slurm sets in a task (its gres plugin, src/plugins/gres/common/
  gres_common.c; srun(1)): SLURM_GPUS_ON_NODE counts the step's GPUs on
  the node, bound or not; CUDA_VISIBLE_DEVICES and SLURM_STEP_GPUS list
  the task's GPUs when they are bound to tasks (--gpus-per-task implies
  --tres-bind=gres/gpu:per_task:N), else all of the step's. Slurm up to
  23.02 also exported SLURM_GPUS_PER_TASK; 23.11 and later export
  SLURM_TRES_PER_TASK=gres/gpu=N instead; neither is needed here.

  1. Not a task of a Slurm-built cluster (TF_CONFIG set, e.g. by
     launch.local, or no SLURM_PROCID/SLURM_LOCALID): None, nothing to do.
  2. V empty, or T = 1: keep V.
  3. S known and |V| < S: Slurm bound GPUs to this task (--gpus-per-task,
     --gpu-bind, --tres-bind) or a wrapper narrowed them: keep V; but if
     T * |V| > S the tasks share GPUs (--ntasks-per-gpu): refused.
     S known and |V| > S (gres without device files): Slurm gave the job S
     GPUs it did not name, and every task would use all of V: refused.
  4. Otherwise every task of the node sees the same V (|V| = S, or Slurm
     manages no GPUs): task L takes V[L*|V|/T : (L+1)*|V|/T].
     SLURM_STEP_GPUS is not used: in a bound task it holds that task's GPUs
     only, so it cannot tell bound from unbound; GPU_DEVICE_ORDINAL repeats
     CUDA_VISIBLE_DEVICES.

  Raises:
    ConfigError: In case 3 with |V| > S or shared GPUs, if T does not
      divide |V| in case 4, or if the SLURM_* variables are malformed.
  """
  if environ.get("TF_CONFIG", "").strip() or not (
      "SLURM_PROCID" in environ and "SLURM_LOCALID" in environ):
    return None
  visible = parse_visible_devices(environ.get(VISIBLE_DEVICES),
                                  num_node_gpus=num_node_gpus)
  local_id = _slurm_int(environ, "SLURM_LOCALID")
  tasks = slurm_tasks_on_node(environ)
  if not 0 <= local_id < tasks:
    raise ConfigError(f"SLURM_LOCALID={local_id} is out of range for the"
                      f" {tasks} task(s) Slurm runs on this node.")
  if not visible:
    return TaskPlacement((), {}, "")
  task = f"Slurm task {local_id} of {tasks} on this node"
  node_gpus = _slurm_node_gpu_count(environ)
  if tasks == 1:
    return TaskPlacement(tuple(visible), {}, f"{task} uses GPUs"
                         f" {ids(visible)}.")
  if node_gpus is not None and len(visible) > node_gpus:
    # Every task would use GPUs Slurm did not give this job.
    raise ConfigError(
        f"Slurm allocated {plural(node_gpus, 'GPU')} on this node but did"
        f" not name them, and the {tasks} tasks each see"
        f" {plural(len(visible), 'GPU')} ({ids(visible)}); bind GPUs to"
        " tasks (--gpus-per-task) or set CUDA_VISIBLE_DEVICES.")
  if node_gpus is not None and len(visible) < node_gpus:
    if tasks * len(visible) > node_gpus:  # --ntasks-per-gpu, or a wrapper.
      raise ConfigError(
          f"Slurm bound the {tasks} tasks on this node to"
          f" {plural(node_gpus, 'GPU')} ({len(visible)} each), so tasks"
          " share GPUs, which NCCL refuses; give each task its own GPUs"
          " (--gpus-per-task).")
    return TaskPlacement(tuple(visible), {}, f"{task} keeps GPUs"
                         f" {ids(visible)} (bound to it: the step has"
                         f" {node_gpus} on this node).")
  if len(visible) % tasks:
    raise ConfigError(
        f"Slurm runs {tasks} tasks on this node but its"
        f" {plural(len(visible), 'GPU')} ({ids(visible)}) do not split"
        " evenly among them; use --ntasks-per-node="
        f"{_largest_divisor(len(visible), tasks)} or --gpus-per-task.")
  share = len(visible) // tasks
  mine = tuple(visible[local_id * share:(local_id + 1) * share])
  return TaskPlacement(mine, {VISIBLE_DEVICES: ",".join(mine)},
                       f"{task} takes GPUs {ids(mine)} of {ids(visible)}"
                       " (Slurm did not bind GPUs to tasks).")

