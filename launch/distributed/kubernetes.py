"""The cluster of a Kubernetes Indexed Job or JobSet pod, without TF_CONFIG.

Kubernetes gives every pod of an Indexed Job (`completionMode: Indexed`)
its index in JOB_COMPLETION_INDEX and the hostname `<job>-<index>`; with a
headless Service named in the pod's `subdomain`, that hostname resolves as
`<job>-<index>.<subdomain>`. A JobSet runs `replicas` such Jobs per
replicated job, named `<jobset>-<replicatedJob>-<jobIndex>`, so its pods are
`<jobset>-<replicatedJob>-<jobIndex>-<podIndex>.<subdomain>`.

The manifests of `launch/deploy/` (see `launch.deploy.render`) pass the rest
through the environment, from literals and the downward API:

* TFHARNESS_NUM_WORKERS: the training pods in all (the replica count);
  its presence is what turns this resolution on.
* TFHARNESS_SUBDOMAIN: the headless Service (Indexed Job) or the JobSet's
  `network.subdomain`; TFHARNESS_PORT: the port every worker listens on
  (default 2222).
* Indexed Job: TFHARNESS_JOB_NAME, the label
  `batch.kubernetes.io/job-name`.
* JobSet: TFHARNESS_JOBSET_NAME, TFHARNESS_REPLICATED_JOB,
  TFHARNESS_JOB_INDEX and TFHARNESS_REPLICATED_JOB_REPLICAS, the labels and
  annotations `jobset.sigs.k8s.io/{jobset-name, replicatedjob-name,
  job-index, replicatedjob-replicas}`.

Every pod is a "worker"; worker 0 (index 0, job 0) is the chief, the only
one that writes into model_dir.
"""

from collections.abc import Mapping

from launch.distributed.cluster import ClusterInfo
from launch.errors import ConfigError

NUM_WORKERS_ENV = "TFHARNESS_NUM_WORKERS"
SUBDOMAIN_ENV = "TFHARNESS_SUBDOMAIN"
PORT_ENV = "TFHARNESS_PORT"
JOB_NAME_ENV = "TFHARNESS_JOB_NAME"
JOBSET_NAME_ENV = "TFHARNESS_JOBSET_NAME"
REPLICATED_JOB_ENV = "TFHARNESS_REPLICATED_JOB"
JOB_INDEX_ENV = "TFHARNESS_JOB_INDEX"
REPLICAS_ENV = "TFHARNESS_REPLICATED_JOB_REPLICAS"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
DEFAULT_PORT = 2222
_MAX_HOSTNAME = 63  # A DNS label; Kubernetes refuses longer pod hostnames.


def is_kubernetes_pod(environ: Mapping[str, str]) -> bool:
  """Whether `environ` is a pod of the harness's Indexed Job or JobSet."""
  return NUM_WORKERS_ENV in environ


def _integer(environ: Mapping[str, str], name: str, *, minimum: int,
             fix: str) -> int:
  text = environ.get(name, "").strip()
  if not text and name == NUM_WORKERS_ENV:
    raise ConfigError(f"{NUM_WORKERS_ENV} is empty; set it to the number of"
                      " training pods, the Job's parallelism times its"
                      " replicas.")
  if not text:
    raise ConfigError(f"{NUM_WORKERS_ENV} is set but {name} is not; {fix}.")
  if not text.isdigit() or int(text) < minimum:
    raise ConfigError(f"{name}={text!r} must be an integer of at least"
                      f" {minimum}; {fix}.")
  return int(text)


def _text(environ: Mapping[str, str], name: str, *, fix: str) -> str:
  value = environ.get(name, "").strip()
  if not value:
    raise ConfigError(f"{NUM_WORKERS_ENV} is set but {name} is not; {fix}.")
  return value


def _port(environ: Mapping[str, str]) -> int:
  text = environ.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
  if not text.isdigit() or not 0 < int(text) < 65536:
    raise ConfigError(f"{PORT_ENV}={text!r} must be a port from 1 to 65535.")
  return int(text)


# Where the manifests take each name from (the downward API).
_SOURCES = {
    JOB_NAME_ENV: "label batch.kubernetes.io/job-name",
    JOBSET_NAME_ENV: "label jobset.sigs.k8s.io/jobset-name",
    REPLICATED_JOB_ENV: "label jobset.sigs.k8s.io/replicatedjob-name",
    JOB_INDEX_ENV: "annotation jobset.sigs.k8s.io/job-index",
    REPLICAS_ENV: "annotation jobset.sigs.k8s.io/replicatedjob-replicas",
}


def _fix(name: str) -> str:
  return (f"pass the pod's {_SOURCES[name]} through the downward API, as the"
          " manifests of launch.deploy.render do")


def _groups(environ: Mapping[str, str],
            num_workers: int) -> tuple[list[str], int]:
  """(the Jobs' names in order, this pod's Job's position among them)."""
  if JOBSET_NAME_ENV not in environ:
    return [_text(environ, JOB_NAME_ENV, fix=_fix(JOB_NAME_ENV))], 0
  jobset = _text(environ, JOBSET_NAME_ENV, fix=_fix(JOBSET_NAME_ENV))
  replicated = _text(environ, REPLICATED_JOB_ENV,
                     fix=_fix(REPLICATED_JOB_ENV))
  replicas = _integer(environ, REPLICAS_ENV, minimum=1,
                      fix=_fix(REPLICAS_ENV))
  job_index = _integer(environ, JOB_INDEX_ENV, minimum=0,
                       fix=_fix(JOB_INDEX_ENV))
  if num_workers % replicas:
    raise ConfigError(f"{NUM_WORKERS_ENV}={num_workers} is not a multiple of"
                      f" the {replicas} Jobs of replicated job"
                      f" {replicated!r}; set it to replicas x parallelism.")
  if job_index >= replicas:
    raise ConfigError(f"{JOB_INDEX_ENV}={job_index} is out of range for"
                      f" {replicas} Jobs; pass the pod's"
                      " jobset.sigs.k8s.io/job-index annotation.")
  return ([f"{jobset}-{replicated}-{index}" for index in range(replicas)],
          job_index)


def from_kubernetes(environ: Mapping[str, str]) -> ClusterInfo:
  """The cluster of an Indexed Job or JobSet pod, from its environment.

  Args:
    environ: The pod's environment (see the module's docstring).

  Returns:
    One "worker" per pod at `<hostname>.<subdomain>:<port>`, in index order
    (JobSet: job index, then pod index), this pod's index its task index;
    a single process for one pod.

  Raises:
    ConfigError: If a variable is missing, malformed or disagrees with
      another, or with the pod's own hostname (HOSTNAME).
  """
  num_workers = _integer(environ, NUM_WORKERS_ENV, minimum=1,
                         fix="set it to the number of training pods")
  index = _integer(environ, COMPLETION_INDEX_ENV, minimum=0,
                   fix="run the pods as an Indexed Job (completionMode:"
                   " Indexed), as launch/deploy/indexed-job.yaml does")
  jobs, job_position = _groups(environ, num_workers)
  pods_per_job = num_workers // len(jobs)
  if index >= pods_per_job:
    raise ConfigError(
        f"{COMPLETION_INDEX_ENV}={index} is out of range for {pods_per_job}"
        f" pods per Job; set {NUM_WORKERS_ENV} to the Job's parallelism"
        " times its replicas.")
  port = _port(environ)
  hostnames = [f"{job}-{pod}" for job in jobs for pod in range(pods_per_job)]
  rank = job_position * pods_per_job + index
  longest = max(hostnames, key=len)
  if len(longest) > _MAX_HOSTNAME:
    raise ConfigError(f"the pod hostname {longest!r} is longer than"
                      f" {_MAX_HOSTNAME} characters; give the Job or JobSet a"
                      " shorter name.")
  actual = environ.get("HOSTNAME", "").strip()
  if actual and actual.split(".")[0] != hostnames[rank]:
    raise ConfigError(
        f"this pod's hostname is {actual!r}, not {hostnames[rank]!r} as its"
        " Job name and index say; do not set the pod's hostname and keep"
        f" {NUM_WORKERS_ENV} and the names as the manifests set them.")
  if num_workers == 1:
    return ClusterInfo()
  subdomain = _text(environ, SUBDOMAIN_ENV,
                    fix="set it to the headless Service's name")
  addresses = tuple(f"{host}.{subdomain}:{port}" for host in hostnames)
  return ClusterInfo({"worker": addresses}, "worker", rank)
