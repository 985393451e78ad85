"""Cluster topology from TF_CONFIG: parsed, validated, and described.

TF_CONFIG is the JSON that Kubeflow's TFJob, Vertex AI and hand-written
scripts set, e.g.::

  {"cluster": {"chief": ["host0:2222"], "worker": ["host1:2222"]},
   "task": {"type": "worker", "index": 0}}

Every way it can be malformed is a `ConfigError` naming the problem.
"""

from collections.abc import Mapping
import dataclasses
import json
import re

from launch.errors import ConfigError, flag

TRAINING_ROLES = ("chief", "worker")
KNOWN_ROLES = ("chief", "worker", "evaluator", "ps")
_SINGLE_TASK_ROLES = ("chief", "evaluator")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
  """This task's place in the cluster.

  Attributes:
    cluster: Role -> list of "host:port"; empty for a single process.
    task_type: This task's role ("chief", "worker", "evaluator"), or None.
    task_index: Index of this task within its role.
  """

  cluster: Mapping[str, tuple[str, ...]] = dataclasses.field(
      default_factory=dict)
  task_type: str | None = None
  task_index: int = 0

  @property
  def num_workers(self) -> int:
    """Training tasks: chief plus workers (at least 1)."""
    return max(1, sum(len(self.cluster.get(role, ()))
                      for role in TRAINING_ROLES))

  @property
  def is_multi_worker(self) -> bool:
    return self.num_workers > 1

  @property
  def worker_id(self) -> int:
    """Rank among the training tasks, the chief first."""
    if self.task_type == "worker" and "chief" in self.cluster:
      return self.task_index + 1
    return self.task_index if self.task_type in TRAINING_ROLES else 0

  @property
  def is_chief(self) -> bool:
    """The task that writes into model_dir: the chief, else worker 0."""
    if self.task_type is None:
      return True
    if "chief" in self.cluster:
      return self.task_type == "chief"
    return self.task_type == "worker" and self.task_index == 0

  @property
  def is_evaluator(self) -> bool:
    return self.task_type == "evaluator"

  def describe(self) -> str:
    if not self.cluster:
      return "single process"
    return (f"task {self.task_type}:{self.task_index} of"
            f" {self.num_workers} training task(s)")


def _parse_address(role: str, index: int, address) -> str:
  where = f"TF_CONFIG cluster.{role}[{index}]"
  if not isinstance(address, str):
    raise ConfigError(f"{where} must be a \"host:port\" string, got"
                      f" {address!r}.")
  match = _HOST_PORT.match(address)
  if not match or not 0 < int(match.group(2)) < 65536:
    raise ConfigError(f"{where} is {address!r}, which is not host:port with a"
                      " port from 1 to 65535.")
  return address


def _parse_cluster(cluster) -> dict[str, tuple[str, ...]]:
  if not isinstance(cluster, dict) or not cluster:
    raise ConfigError("TF_CONFIG \"cluster\" must be a non-empty object of"
                      " role -> list of \"host:port\".")
  parsed = {}
  for role, addresses in cluster.items():
    if role not in KNOWN_ROLES:
      raise ConfigError(f"TF_CONFIG cluster has unknown role {role!r}; roles"
                        f" are {', '.join(KNOWN_ROLES)}.")
    if not isinstance(addresses, list) or not addresses:
      raise ConfigError(f"TF_CONFIG cluster.{role} must be a non-empty list"
                        " of \"host:port\".")
    if role in _SINGLE_TASK_ROLES and len(addresses) > 1:
      raise ConfigError(f"TF_CONFIG cluster.{role} has {len(addresses)}"
                        " tasks; at most one is allowed.")
    parsed[role] = tuple(_parse_address(role, index, address)
                         for index, address in enumerate(addresses))
  seen = {}
  for role, addresses in parsed.items():
    for index, address in enumerate(addresses):
      if address in seen:
        raise ConfigError(f"TF_CONFIG gives {address} to both {seen[address]}"
                          f" and {role}:{index}.")
      seen[address] = f"{role}:{index}"
  if "ps" in parsed:
    raise ConfigError("TF_CONFIG has \"ps\" tasks, but parameter-server"
                      " training is not supported; use chief/worker tasks.")
  if not any(role in parsed for role in TRAINING_ROLES):
    raise ConfigError("TF_CONFIG cluster has no \"chief\" or \"worker\""
                      " task.")
  return parsed


def _parse_task(task, cluster: Mapping[str, tuple[str, ...]]) -> tuple[str,
                                                                       int]:
  if not isinstance(task, dict):
    raise ConfigError("TF_CONFIG \"task\" must be an object with \"type\" and"
                      " \"index\".")
  task_type, index = task.get("type"), task.get("index", 0)
  if task_type not in cluster:
    raise ConfigError(f"TF_CONFIG task.type {task_type!r} is not a role of the"
                      f" cluster ({', '.join(cluster)}).")
  if isinstance(index, bool) or not isinstance(index, int):
    raise ConfigError(f"TF_CONFIG task.index must be an integer, got"
                      f" {index!r}.")
  if not 0 <= index < len(cluster[task_type]):
    raise ConfigError(f"TF_CONFIG task.index {index} is out of range for the"
                      f" {len(cluster[task_type])} {task_type} task(s).")
  return task_type, index


def parse_tf_config(text: str | None) -> ClusterInfo:
  """Parses and validates a TF_CONFIG value.

  Args:
    text: The JSON text, or None/empty for a single process.

  Returns:
    The cluster info; a TF_CONFIG without "cluster" is a single process.

  Raises:
    ConfigError: If the value is malformed.
  """
  if not text or not text.strip():
    return ClusterInfo()
  try:
    value = json.loads(text)
  except json.JSONDecodeError as error:
    raise ConfigError(f"TF_CONFIG is not valid JSON ({error.msg} at line"
                      f" {error.lineno} column {error.colno}).") from None
  if not isinstance(value, dict):
    raise ConfigError("TF_CONFIG must be a JSON object with \"cluster\" and"
                      " \"task\".")
  if not value.get("cluster"):
    if value.get("task"):
      raise ConfigError("TF_CONFIG has a \"task\" but no \"cluster\".")
    return ClusterInfo()
  cluster = _parse_cluster(value["cluster"])
  if "task" not in value:
    raise ConfigError("TF_CONFIG has a \"cluster\" but no \"task\".")
  task_type, task_index = _parse_task(value["task"], cluster)
  return ClusterInfo(cluster, task_type, task_index)


def _split_outside_brackets(text: str) -> list[str]:
  parts, depth, current = [], 0, ""
  for char in text:
    depth += {"[": 1, "]": -1}.get(char, 0)
    if char == "," and depth == 0:
      parts.append(current)
      current = ""
    else:
      current += char
  return [part for part in [*parts, current] if part]


def expand_hostlist(hostlist: str) -> list[str]:
  """Expands a Slurm hostlist: "node[01-03,7],gpu5" -> node01 ... gpu5.

  Raises:
    ConfigError: If the list is malformed.
  """
  hosts = []
  for term in _split_outside_brackets(hostlist.strip()):
    match = re.fullmatch(r"([^\[\]]*)\[([0-9,\-]+)\]([^\[\]]*)", term)
    if not match:
      if "[" in term or "]" in term:
        raise ConfigError(f"cannot read the Slurm host list {hostlist!r}.")
      hosts.append(term)
      continue
    prefix, ranges, suffix = match.groups()
    for part in ranges.split(","):
      first, _, last = part.partition("-")
      if not first.isdigit() or (last and not last.isdigit()):
        raise ConfigError(f"cannot read the Slurm host list {hostlist!r}.")
      for number in range(int(first), int(last or first) + 1):
        hosts.append(f"{prefix}{number:0{len(first)}d}{suffix}")
  return hosts


def expand_tasks_per_node(text: str) -> list[int]:
  """Expands SLURM_TASKS_PER_NODE: "2(x3),1" -> [2, 2, 2, 1]."""
  counts = []
  for part in text.split(","):
    match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
    if not match:
      raise ConfigError(f"cannot read SLURM_TASKS_PER_NODE={text!r}.")
    counts += [int(match.group(1))] * int(match.group(2) or 1)
  return counts


def place_tasks(tasks_per_node: list[int], distribution: str,
                plane_size: int = 1) -> list[tuple[int, int]]:
  """Where Slurm puts each task: rank -> (node index, local id).

  Args:
    tasks_per_node: Tasks on each node of the step, in node-list order.
    distribution: The node part of `srun -m`: "block" (fill each node in
      turn), "cyclic" (one task per node round robin) or "plane" (blocks of
      `plane_size` tasks round robin); full nodes are skipped.
    plane_size: Tasks per block of "plane".

  Raises:
    ConfigError: For a distribution whose placement is not computable here.
  """
  block = {"block": None, "cyclic": 1, "plane": plane_size}
  if distribution not in block:
    raise ConfigError(f"srun's task distribution {distribution!r} is not"
                      " supported; use -m block, cyclic or plane=N, or set"
                      " TF_CONFIG.")
  size = block[distribution] or max(tasks_per_node, default=1)
  remaining = list(tasks_per_node)
  placed, local_ids = [], [0] * len(tasks_per_node)
  while any(remaining):
    for node, left in enumerate(remaining):
      for _ in range(min(size, left)):
        placed.append((node, local_ids[node]))
        local_ids[node] += 1
        remaining[node] -= 1
  return placed


def _slurm_distribution(environ: Mapping[str, str]) -> tuple[str, int]:
  """("block" | "cyclic" | "plane" | ..., plane size) of this srun step."""
  text = environ.get("SLURM_DISTRIBUTION", "block") or "block"
  nodes = text.split(":")[0].split(",")[0]  # "cyclic:block,Pack" -> cyclic.
  if nodes.startswith("plane"):
    size = nodes.partition("=")[2] or environ.get("SLURM_DIST_PLANESIZE", "")
    if not size.isdigit() or int(size) < 1:
      raise ConfigError(f"cannot read the plane size of"
                        f" SLURM_DISTRIBUTION={text!r}.")
    return "plane", int(size)
  return nodes, 1


def _check_batch_step(environ: Mapping[str, str], num_tasks: int) -> None:
  """Refuses the batch script itself of a multi-task job (no srun)."""
  step = environ.get("SLURM_STEP_ID", environ.get("SLURM_STEPID"))
  if num_tasks > 1 and (step is None or step in ("batch", "4294967294")):
    raise ConfigError(
        f"this is the batch script of a Slurm job of {num_tasks} tasks, not"
        " one of its tasks; start the workers with srun (srun python -m"
        " launch ...), which runs one per task.")


def from_slurm(environ: Mapping[str, str], *, port_base: int) -> ClusterInfo:
  """The cluster of an `srun` step: one worker per task, task 0 the chief.

  Task ranks are placed on nodes as srun's `-m` distribution says (block,
  cyclic or plane); a task listens on `port_base` + its local id on its node,
  so several tasks per node do not collide. When Slurm says where this task
  runs (SLURMD_NODENAME, SLURM_LOCALID), that must match the placement.

  Raises:
    ConfigError: If the SLURM_* variables are missing or disagree, or this
      is a multi-task job's batch script rather than an srun task.
  """
  def get(*names):
    for name in names:
      if environ.get(name):
        return environ[name]
    raise ConfigError(f"Slurm environment without {names[-1]}; start the"
                      " tasks with srun.")

  try:
    num_tasks = int(get("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"))
    task_index = int(get("SLURM_PROCID"))
  except ValueError:
    raise ConfigError("SLURM_NTASKS and SLURM_PROCID must be integers."
                      ) from None
  _check_batch_step(environ, num_tasks)
  nodes = expand_hostlist(get("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"))
  tasks = expand_tasks_per_node(get("SLURM_STEP_TASKS_PER_NODE",
                                    "SLURM_TASKS_PER_NODE"))
  if len(tasks) != len(nodes):
    raise ConfigError(f"Slurm lists {len(nodes)} nodes but tasks per node"
                      f" for {len(tasks)}.")
  if sum(tasks) != num_tasks:
    raise ConfigError(f"Slurm's tasks per node add up to {sum(tasks)}, not"
                      f" SLURM_NTASKS={num_tasks}.")
  if not 0 <= task_index < num_tasks:
    raise ConfigError(f"SLURM_PROCID={task_index} is out of range for"
                      f" {num_tasks} tasks.")
  if not (0 < port_base and port_base + max(tasks) <= 65536):
    raise ConfigError(f"{flag('slurm_port_base')}={port_base} leaves no ports.")
  if num_tasks == 1:
    return ClusterInfo()
  distribution, plane_size = _slurm_distribution(environ)
  placed = place_tasks(tasks, distribution, plane_size)
  node, local_id = placed[task_index]
  actual = (environ.get("SLURMD_NODENAME", nodes[node]),
            environ.get("SLURM_LOCALID", str(local_id)))
  if actual != (nodes[node], str(local_id)):
    raise ConfigError(
        f"Slurm placed task {task_index} on {actual[0]} as local task"
        f" {actual[1]}, not where -m {distribution} puts it ({nodes[node]},"
        f" local task {local_id}); use -m block, cyclic or plane=N, or set"
        " TF_CONFIG.")
  addresses = tuple(f"{nodes[node]}:{port_base + local}"
                    for node, local in placed)
  return ClusterInfo({"worker": addresses}, "worker", task_index)


def from_environment(environ: Mapping[str, str], *,
                     slurm_port_base: int = 8888) -> ClusterInfo:
  """The cluster from TF_CONFIG, an `srun` step or a Kubernetes pod, else single.

  TF_CONFIG wins, as Kubeflow's TFJob and Vertex AI set it; inside Slurm
  (SLURM_PROCID present) the tasks of the step form the cluster; a pod of
  the Indexed Job or JobSet of `launch/deploy/` (TFHARNESS_NUM_WORKERS
  present) finds its peers from its index and their stable hostnames.
  """
  from launch.distributed import kubernetes  # It imports this module.
  if environ.get("TF_CONFIG", "").strip():
    return parse_tf_config(environ["TF_CONFIG"])
  if "SLURM_PROCID" in environ:
    return from_slurm(environ, port_base=slurm_port_base)
  if kubernetes.is_kubernetes_pod(environ):
    return kubernetes.from_kubernetes(environ)
  return ClusterInfo()


def to_tf_config(info: ClusterInfo) -> str:
  """The TF_CONFIG JSON of `info` (for starting tasks)."""
  return json.dumps({"cluster": {role: list(addresses)
                                 for role, addresses in info.cluster.items()},
                     "task": {"type": info.task_type,
                              "index": info.task_index}})
