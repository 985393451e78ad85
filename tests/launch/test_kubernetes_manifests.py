"""The Kubernetes manifests, validated offline against the API's schemas.

* Service, Job, NetworkPolicy: kubernetes-validate (PyPI), which ships the
  JSON schemas of Kubernetes' OpenAPI; `--strict` rejects unknown fields.
  Checked against Kubernetes 1.31 (podFailurePolicy became GA:
  https://kubernetes.io/docs/tasks/job/pod-failure-policy) and the newest.
* JobSet: kubernetes-validate has no schema for it (it only warns), so its
  CRD's openAPIV3Schema from JobSet v0.12.0 is vendored in
  tests/launch/data/ (made strict as `kubectl apply` is; see
  vendor_jobset_schema.py) and checked with jsonschema; each replicated
  job's template is a batch/v1 Job spec, checked with kubernetes-validate.
"""

import json
import os
import shlex
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest
import yaml

from launch.deploy import render
from tests.docs.examples import docs_example
from tests.processes import REPO_ROOT

_DEPLOY = os.path.join(REPO_ROOT, "launch", "deploy")
_KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
_JOBSET_SCHEMA = os.path.join(os.path.dirname(__file__), "data",
                              "jobset-v1alpha2-schema.json")
_HARNESS = ["--", "--model=mlp", "--model_dir=/runs/m"]


def _argv(kind: str, workers: int = 4, *extra: str) -> list[str]:
  return [f"--kind={kind}", "--name=run", f"--workers={workers}",
          "--image=img:1", "--model_dir_claim=runs", *extra, *_HARNESS]


def _resources(text: str) -> list[dict]:
  return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _validate_kubernetes(resource: dict) -> None:
  for version in _KUBERNETES_VERSIONS:
    kubernetes_validate.validate(resource, version, strict=True)


def _validate_jobset(resource: dict) -> None:
  with open(_JOBSET_SCHEMA, encoding="utf-8") as stream:
    jsonschema.validate(resource, json.load(stream))
  for replicated in resource["spec"]["replicatedJobs"]:
    _validate_kubernetes({"apiVersion": "batch/v1", "kind": "Job",
                          "metadata": {"name": replicated["name"]},
                          "spec": replicated["template"]["spec"]})


def validate(resource: dict) -> None:
  """Raises if `resource` does not follow its API's schema (strictly)."""
  if resource["kind"] == "JobSet":
    _validate_jobset(resource)
  else:
    _validate_kubernetes(resource)


def _shipped(name: str) -> str:
  with open(os.path.join(_DEPLOY, name), encoding="utf-8") as stream:
    return stream.read()


@pytest.mark.parametrize("name", ["jobset.yaml", "indexed-job.yaml"])
def test_the_shipped_manifests_are_what_their_command_writes(name):
  text = _shipped(name)
  first = text.splitlines()[0]
  prefix = "# Written by: python -m launch.deploy.render "
  assert first.startswith(prefix)
  assert render.render(shlex.split(first[len(prefix):])) == text
  kinds = [resource["kind"] for resource in _resources(text)]
  assert kinds == (["JobSet", "NetworkPolicy"] if name == "jobset.yaml"
                   else ["Service", "Job", "NetworkPolicy"])
  for resource in _resources(text):
    validate(resource)


@pytest.mark.parametrize("kind", ["jobset", "indexed-job"])
@pytest.mark.parametrize("workers", [1, 2, 4])
def test_rendered_manifests_validate_and_read_back_as_built(kind, workers):
  argv = _argv(kind, workers, "--gpus=2", "--data_claim=data")
  argv += ["--note=yes", "--text=a b: 'c' \"d\"", "--n=123", "--e="]
  text = render.render(argv)
  args = render._parser().parse_args(argv[:argv.index("--")])
  args.harness_args = argv[argv.index("--") + 1:]
  built = (render.jobset(args) if kind == "jobset"
           else render.indexed_job(args))
  assert _resources(text) == built  # The YAML writer is faithful.
  for resource in built:
    validate(resource)


def _job_spec(resources: list[dict]) -> dict:
  for resource in resources:
    if resource["kind"] == "Job":
      return resource["spec"]
    if resource["kind"] == "JobSet":
      return resource["spec"]["replicatedJobs"][0]["template"]["spec"]
  raise AssertionError("no Job")


@pytest.mark.parametrize("kind", ["jobset", "indexed-job"])
def test_the_failure_policy_meets_the_exit_codes(kind):
  spec = _job_spec(_resources(render.render(_argv(kind, 4))))
  rules = spec["podFailurePolicy"]["rules"]
  assert rules[0] == {"action": "FailJob", "onExitCodes": {
      "containerName": "trainer", "operator": "In", "values": [2, 3]}}
  assert rules[1]["action"] == "Ignore"
  assert rules[1]["onExitCodes"]["values"] == [42]
  assert rules[2]["onPodConditions"][0]["type"] == "DisruptionTarget"
  pod = spec["template"]["spec"]
  assert pod["restartPolicy"] == "Never"  # podFailurePolicy needs it.
  assert pod["terminationGracePeriodSeconds"] == 120
  assert spec["completionMode"] == "Indexed"
  assert spec["completions"] == spec["parallelism"] == 4
  env = {item["name"]: item.get("value")
         for item in pod["containers"][0]["env"]}
  assert env["TFHARNESS_NUM_WORKERS"] == "4"
  assert spec["backoffLimit"] == (0 if kind == "jobset" else 12)


def _misspelled(resource: dict, path: tuple, wrong: str) -> dict:
  resource = json.loads(json.dumps(resource))
  node = resource
  for key in path[:-1]:
    node = node[key]
  node[wrong] = node.pop(path[-1])
  return resource


_POD = ("template", "spec")
_MISSPELLINGS = [
    ("indexed-job", 1, ("spec", "completionMode"), "completionMod"),
    ("indexed-job", 1, ("spec", *_POD, "terminationGracePeriodSeconds"),
     "terminationGracePeriodSecond"),
    ("indexed-job", 1, ("spec", "podFailurePolicy", "rules", 0,
                        "onExitCodes"), "onExitCode"),
    ("indexed-job", 0, ("spec", "clusterIP"), "clusterIp"),
    ("indexed-job", 2, ("spec", "podSelector"), "podselector"),
    ("jobset", 0, ("spec", "failurePolicy", "maxRestarts"), "maxRestart"),
    ("jobset", 0, ("spec", "network", "enableDNSHostnames"),
     "enableDnsHostnames"),
    ("jobset", 0, ("spec", "replicatedJobs", 0, "template", "spec",
                   "parallelism"), "paralelism"),
    ("jobset", 0, ("spec", "replicatedJobs", 0, "template", "spec", *_POD,
                   "containers", 0, "volumeMounts"), "volumeMount"),
]


@pytest.mark.parametrize("kind,position,path,wrong", _MISSPELLINGS)
def test_a_misspelled_field_is_rejected(kind, position, path, wrong):
  resource = _resources(render.render(_argv(kind)))[position]
  validate(resource)
  with pytest.raises((jsonschema.ValidationError,
                      kubernetes_validate.ValidationError)):
    validate(_misspelled(resource, path, wrong))


def test_a_wrong_value_is_rejected():
  jobset, _ = _resources(render.render(_argv("jobset")))
  jobset["spec"]["failurePolicy"]["rules"][0]["action"] = "FailJob"
  with pytest.raises(jsonschema.ValidationError):
    validate(jobset)
  _, job, _ = _resources(render.render(_argv("indexed-job")))
  job["spec"]["completions"] = "four"
  with pytest.raises(kubernetes_validate.ValidationError):
    validate(job)


def test_kubernetes_validate_strict_passes_the_shipped_indexed_job():
  result = subprocess.run(
      [sys.executable, "-m", "kubernetes_validate", "--strict",
       os.path.join(_DEPLOY, "indexed-job.yaml")],
      capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  assert result.stdout.count(" passed for resource ") == 3, result.stdout


def _run_renderer(*argv: str) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, "-m", "launch.deploy.render", *argv],
      capture_output=True, text=True, check=False, cwd=REPO_ROOT,
      env=dict(os.environ, PYTHONPATH=REPO_ROOT))


@pytest.mark.parametrize("argv,words", [
    (["--kind=jobset", "--name=Run_1", "--workers=2", "--image=i",
      "--model_dir_claim=c", "--", "--model_dir=/runs/x"],
     "--name='Run_1' must be a DNS label"),
    (["--kind=jobset", "--name=run", "--workers=0", "--image=i",
      "--model_dir_claim=c", "--", "--model_dir=/runs/x"],
     "--workers must be at least 1"),
    (["--kind=indexed-job", "--name=run", "--workers=2", "--image=i",
      "--model_dir_claim=c", "--", "--model_dir=/tmp/x"],
     "must set --model_dir=/runs/NAME"),
])
def test_a_bad_renderer_option_is_one_sentence_and_exit_2(argv, words):
  result = _run_renderer(*argv)
  assert result.returncode == 2 and not result.stdout
  assert result.stderr.startswith("error: ") and words in result.stderr
  assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("written", ["jobset.yaml", "indexed-job.yaml"])
def test_the_docs_render_commands_write_the_shipped_manifests(tmp_path,
                                                              written):
  command = {
      "jobset.yaml": docs_example("docs/multi-worker-and-clusters.md",
                                  "k8s-render-jobset"),
      "indexed-job.yaml": docs_example(
          "docs/multi-worker-and-clusters.md", "k8s-render-indexed-job"),
  }[written]
  env = dict(os.environ, PYTHONPATH=REPO_ROOT,
             PATH=os.path.dirname(sys.executable) + os.pathsep
             + os.environ.get("PATH", ""))
  subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path,
                 env=env, check=True)
  text = (tmp_path / written).read_text()
  assert text == _shipped(written)
  for resource in _resources(text):
    validate(resource)


def test_a_script_calling_fit_runs_with_command():
  argv = ["--kind=indexed-job", "--name=run", "--workers=2", "--image=i",
          "--model_dir_claim=c", "--command=python my_train.py --fast",
          "--", "--epochs=1"]
  _, job, _ = _resources(render.render(argv))
  container = job["spec"]["template"]["spec"]["containers"][0]
  assert container["command"] == ["python", "my_train.py", "--fast"]
  assert container["args"] == ["--epochs=1"]
  validate(job)


def test_the_header_command_round_trips_with_spaces():
  argv = _argv("jobset", 2, "--command=python my train.py")
  first = render.render(argv).splitlines()[0]
  prefix = "# Written by: python -m launch.deploy.render "
  assert shlex.split(first[len(prefix):]) == argv
