"""The cluster of an Indexed Job / JobSet pod, from what Kubernetes gives it.

What a pod gets, from Kubernetes' and JobSet's documentation:
* An Indexed Job's pod has its index in the environment variable
  JOB_COMPLETION_INDEX (and the annotation
  batch.kubernetes.io/job-completion-index), and the hostname
  `${jobName}-${completionIndex}`; with a headless Service named in the
  pod's `subdomain`, peers reach it as `<hostname>.<subdomain>`:
  https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode
  https://www.kubernetes.io/docs/tasks/job/job-with-pod-to-pod-communication/
* The Job controller labels its pods batch.kubernetes.io/job-name (1.27+);
  labels and annotations reach the container through the downward API
  (`fieldRef: metadata.labels['KEY']`):
  https://kubernetes.io/docs/concepts/workloads/pods/downward-api/
* A JobSet's child Jobs are `<jobSet>-<replicatedJob>-<jobIndex>` and, with
  `network.enableDNSHostnames`, its pods are reached at
  `<jobSet.name>-<spec.replicatedJob.name>-<job-index>-<pod-index>.<subdomain>`
  (subdomain defaults to the JobSet's name); pods carry the labels and
  annotations jobset.sigs.k8s.io/jobset-name, replicatedjob-name, job-index
  and replicatedjob-replicas:
  https://github.com/kubernetes-sigs/jobset/blob/main/site/static/examples/simple/jobset-with-network.yaml
  https://pkg.go.dev/sigs.k8s.io/jobset/api/jobset/v1alpha2 (JobIndexKey,
  ReplicatedJobReplicas, ...)
* The container runtime sets HOSTNAME to the pod's hostname.
"""

import subprocess
import sys

import pytest

from launch.distributed import cluster, kubernetes, placement
from launch.errors import ConfigError
from tests.processes import harness_env


def indexed_job_pod(job: str, index: int, workers: int, **extra) -> dict:
  """The environment the Indexed Job of launch/deploy/ gives pod `index`."""
  env = {"JOB_COMPLETION_INDEX": str(index), "HOSTNAME": f"{job}-{index}",
         "TFHARNESS_NUM_WORKERS": str(workers), "TFHARNESS_PORT": "2222",
         "TFHARNESS_SUBDOMAIN": job, "TFHARNESS_JOB_NAME": job,
         "KUBERNETES_SERVICE_HOST": "10.96.0.1", "PATH": "/usr/bin"}
  return {**env, **extra}


def jobset_pod(jobset: str, job_index: int, pod_index: int, *, replicas: int,
               pods_per_job: int, replicated: str = "workers",
               **extra) -> dict:
  """The environment the JobSet of launch/deploy/ gives one pod."""
  env = {"JOB_COMPLETION_INDEX": str(pod_index),
         "HOSTNAME": f"{jobset}-{replicated}-{job_index}-{pod_index}",
         "TFHARNESS_NUM_WORKERS": str(replicas * pods_per_job),
         "TFHARNESS_SUBDOMAIN": jobset, "TFHARNESS_JOBSET_NAME": jobset,
         "TFHARNESS_REPLICATED_JOB": replicated,
         "TFHARNESS_JOB_INDEX": str(job_index),
         "TFHARNESS_REPLICATED_JOB_REPLICAS": str(replicas)}
  return {**env, **extra}


@pytest.mark.parametrize("workers", [2, 4])
def test_every_pod_of_an_indexed_job_agrees_on_the_cluster(workers):
  expected = tuple(f"train-{i}.train:2222" for i in range(workers))
  infos = [cluster.from_environment(indexed_job_pod("train", i, workers))
           for i in range(workers)]
  for index, info in enumerate(infos):
    assert info.cluster == {"worker": expected}
    assert (info.task_type, info.task_index) == ("worker", index)
    assert info.worker_id == index and info.num_workers == workers
  assert [info.is_chief for info in infos] == [True] + [False] * (workers - 1)


def test_one_pod_is_a_single_process():
  for env in (indexed_job_pod("train", 0, 1),
              jobset_pod("js", 0, 0, replicas=1, pods_per_job=1)):
    info = cluster.from_environment(env)
    assert info == cluster.ClusterInfo() and info.is_chief


@pytest.mark.parametrize("replicas,pods_per_job", [(1, 2), (1, 4), (2, 2),
                                                    (4, 1)])
def test_every_pod_of_a_jobset_agrees_on_the_cluster(replicas, pods_per_job):
  workers = replicas * pods_per_job
  expected = tuple(f"js-workers-{j}-{p}.js:2222" for j in range(replicas)
                   for p in range(pods_per_job))
  ranks = []
  for job_index in range(replicas):
    for pod_index in range(pods_per_job):
      info = cluster.from_environment(jobset_pod(
          "js", job_index, pod_index, replicas=replicas,
          pods_per_job=pods_per_job))
      assert info.cluster == {"worker": expected}
      assert info.num_workers == workers
      assert expected[info.task_index].startswith(
          f"js-workers-{job_index}-{pod_index}.")
      ranks.append(info.task_index)
      assert info.is_chief == (job_index == pod_index == 0)
  assert ranks == list(range(workers))


def test_port_and_subdomain_come_from_the_manifest():
  info = cluster.from_environment(indexed_job_pod(
      "run", 1, 2, TFHARNESS_PORT="5000", TFHARNESS_SUBDOMAIN="svc"))
  assert info.cluster["worker"] == ("run-0.svc:5000", "run-1.svc:5000")
  del_port = indexed_job_pod("run", 1, 2)
  del del_port["TFHARNESS_PORT"]
  assert cluster.from_environment(del_port).cluster["worker"][0] == (
      "run-0.run:2222")


def test_tf_config_and_slurm_come_first():
  env = indexed_job_pod("run", 1, 2, TF_CONFIG=(
      '{"cluster": {"worker": ["a:1", "b:2"]},'
      ' "task": {"type": "worker", "index": 0}}'))
  assert cluster.from_environment(env).cluster["worker"] == ("a:1", "b:2")
  slurm = indexed_job_pod("run", 1, 2, SLURM_PROCID="0", SLURM_NTASKS="1",
                          SLURM_JOB_NODELIST="n1", SLURM_TASKS_PER_NODE="1")
  assert cluster.from_environment(slurm) == cluster.ClusterInfo()


def test_an_indexed_job_without_the_harness_variables_is_not_a_cluster():
  # E.g. a sweep of independent runs, one per index.
  env = {"JOB_COMPLETION_INDEX": "3", "HOSTNAME": "sweep-3"}
  assert cluster.from_environment(env) == cluster.ClusterInfo()


def _message(env) -> str:
  with pytest.raises(ConfigError) as caught:
    cluster.from_environment(env)
  message = str(caught.value)
  assert message.endswith(".") and "\n" not in message
  assert message.count(". ") == 0, message  # One sentence.
  return message


def _without(env, name):
  return {key: value for key, value in env.items() if key != name}


@pytest.mark.parametrize("change,words", [
    (lambda e: _without(e, "JOB_COMPLETION_INDEX"),
     "JOB_COMPLETION_INDEX is not; run the pods as an Indexed Job"),
    (lambda e: dict(e, JOB_COMPLETION_INDEX="x"),
     "JOB_COMPLETION_INDEX='x' must be an integer"),
    (lambda e: dict(e, JOB_COMPLETION_INDEX="4"),
     "JOB_COMPLETION_INDEX=4 is out of range for 4 pods"),
    (lambda e: dict(e, TFHARNESS_NUM_WORKERS="0"),
     "TFHARNESS_NUM_WORKERS='0' must be an integer of at least 1"),
    (lambda e: dict(e, TFHARNESS_NUM_WORKERS=""),
     "TFHARNESS_NUM_WORKERS is empty; set it to the number of training"),
    (lambda e: _without(e, "TFHARNESS_JOB_NAME"),
     "TFHARNESS_JOB_NAME is not"),
    (lambda e: _without(e, "TFHARNESS_SUBDOMAIN"),
     "TFHARNESS_SUBDOMAIN is not; set it to the headless Service's name"),
    (lambda e: dict(e, TFHARNESS_PORT="70000"),
     "TFHARNESS_PORT='70000' must be a port"),
    (lambda e: dict(e, HOSTNAME="my-pod"),
     "this pod's hostname is 'my-pod', not 'train-1'"),
    (lambda e: dict(e, TFHARNESS_JOB_NAME="t" * 62, HOSTNAME=""),
     "is longer than 63 characters"),
])
def test_a_missing_or_inconsistent_indexed_job_variable_is_one_sentence(
    change, words):
  assert words in _message(change(indexed_job_pod("train", 1, 4)))


@pytest.mark.parametrize("change,words", [
    (lambda e: dict(e, TFHARNESS_REPLICATED_JOB_REPLICAS="3"),
     "TFHARNESS_NUM_WORKERS=4 is not a multiple of the 3 Jobs"),
    (lambda e: dict(e, TFHARNESS_JOB_INDEX="2"),
     "TFHARNESS_JOB_INDEX=2 is out of range for 2 Jobs"),
    (lambda e: _without(e, "TFHARNESS_REPLICATED_JOB"),
     "TFHARNESS_REPLICATED_JOB is not"),
    (lambda e: dict(e, HOSTNAME="js-workers-0-1"),
     "not 'js-workers-1-1'"),
])
def test_a_missing_or_inconsistent_jobset_variable_is_one_sentence(
    change, words):
  env = jobset_pod("js", 1, 1, replicas=2, pods_per_job=2)
  assert words in _message(change(env))


def test_the_fully_qualified_hostname_is_accepted():
  env = indexed_job_pod("train", 1, 2,
                        HOSTNAME="train-1.train.default.svc.cluster.local")
  assert cluster.from_environment(env).task_index == 1


def test_is_kubernetes_pod_needs_the_harness_variable():
  assert kubernetes.is_kubernetes_pod({"TFHARNESS_NUM_WORKERS": "2"})
  assert not kubernetes.is_kubernetes_pod({"JOB_COMPLETION_INDEX": "0"})


def test_a_pod_with_a_bad_variable_exits_2_before_writing(tmp_path):
  pod = _without(indexed_job_pod("train", 1, 2), "JOB_COMPLETION_INDEX")
  env = harness_env(**_without(pod, "PATH"))
  model_dir = tmp_path / "run"
  result = subprocess.run(
      [sys.executable, "-m", "launch", "--model=mlp", "--dataset=synthetic",
       f"--model_dir={model_dir}", "--train_steps=2"],
      env=env, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip() == (
      "error: TFHARNESS_NUM_WORKERS is set but JOB_COMPLETION_INDEX is not;"
      " run the pods as an Indexed Job (completionMode: Indexed), as"
      " launch/deploy/indexed-job.yaml does.")
  assert not model_dir.exists()


def test_a_pod_keeps_the_gpus_its_device_plugin_gave_it():
  env = indexed_job_pod("train", 1, 2, CUDA_VISIBLE_DEVICES="0,1")
  decided = placement.decide(env, num_node_gpus=2)
  assert decided.gpus == ("0", "1") and dict(decided.env) == {}
