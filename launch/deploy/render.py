"""Writes the Kubernetes manifests of a multi-worker run: JobSet or Indexed Job.

  python -m launch.deploy.render --kind=jobset --name=mnist-mlp --workers=4 \
    --image=registry.example.com/tfharness:0.1.0 \
    --model_dir_claim=tfharness-runs --data_claim=mnist-data \
    -- --model=mlp --dataset=mnist --data_dir=/data --model_dir=/runs/mnist-mlp

prints YAML for `kubectl apply -f -`: the JobSet (kubernetes-sigs/jobset,
which makes the headless Service itself) or the Indexed Job and its headless
Service, plus a NetworkPolicy that admits only the run's own pods to the
worker port. Every pod finds its place from its index and its peers' stable
hostnames (`launch.distributed.kubernetes`); worker 0 is the chief and the
only writer of model_dir, a ReadWriteMany PersistentVolumeClaim mounted at
/runs on every pod. The flags after `--` are the harness's own.

Failures: exit 2 (bad input) and 3 (storage) fail the run at once (a retry
would fail the same way); exit 42 (saved after SIGTERM, e.g. preemption
within `terminationGracePeriodSeconds`) and pod disruptions replace the pod
without counting as a failure; any other failure restarts the workers, which
resume from the checkpoint in model_dir, at most `--restarts` times.

This is argparse, not absl: it must not add flags to the harness's own.
"""

import argparse
import json
import re
import shlex
import sys

DEFAULT_PORT = 2222
DEFAULT_COMMAND = "python -m launch"
RUN_LABEL = "tfharness.io/run"
CONTAINER = "trainer"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./=:\[\]'-]*$")
_HEADER = """\
# Rerun that command to change it (docs/multi-worker-and-clusters.md). The
# model_dir claim must be ReadWriteMany: every pod mounts it at /runs and
# reads the checkpoints; worker 0 (index 0) alone writes them. Exit 2 (bad
# input) and 3 (storage) fail the run; exit 42 (saved after SIGTERM) and
# disrupted pods are replaced without counting; other failures restart the
# workers, which resume from model_dir.
"""
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


class RenderError(ValueError):
  """A bad option of the renderer: one sentence."""


def _env(name: str, value: str | None = None, *, field: str | None = None):
  if field is None:
    return {"name": name, "value": value}
  return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}


def _pod(args, env: list, *, subdomain: str | None) -> dict:
  mounts = [{"name": "runs", "mountPath": "/runs"}]
  volumes = [{"name": "runs", "persistentVolumeClaim": {
      "claimName": args.model_dir_claim}}]
  if args.data_claim:
    mounts.append({"name": "data", "mountPath": "/data", "readOnly": True})
    volumes.append({"name": "data", "persistentVolumeClaim": {
        "claimName": args.data_claim, "readOnly": True}})
  container = {
      "name": CONTAINER, "image": args.image,
      "command": shlex.split(args.command), "args": list(args.harness_args),
      "env": [_env("TFHARNESS_NUM_WORKERS", str(args.workers)),
              _env("TFHARNESS_PORT", str(args.port)), *env],
      "ports": [{"name": "tf-worker", "containerPort": args.port,
                 "protocol": "TCP"}],
      "volumeMounts": mounts,
  }
  if args.gpus:
    container["resources"] = {"limits": {"nvidia.com/gpu": args.gpus}}
  spec = {"restartPolicy": "Never",
          "terminationGracePeriodSeconds": args.grace_seconds,
          "containers": [container], "volumes": volumes}
  if subdomain:
    spec = {"subdomain": subdomain, **spec}
  return {"metadata": {"labels": {RUN_LABEL: args.name}}, "spec": spec}


def _job_spec(args, pod: dict, *, backoff_limit: int) -> dict:
  exit_codes = lambda codes: {"containerName": CONTAINER, "operator": "In",
                              "values": codes}
  return {
      "completionMode": "Indexed", "completions": args.workers,
      "parallelism": args.workers, "backoffLimit": backoff_limit,
      "podFailurePolicy": {"rules": [
          {"action": "FailJob", "onExitCodes": exit_codes([2, 3])},
          {"action": "Ignore", "onExitCodes": exit_codes([42])},
          {"action": "Ignore", "onPodConditions": [
              {"type": "DisruptionTarget", "status": "True"}]},
      ]},
      "template": pod,
  }


def _network_policy(args) -> dict:
  """Only the run's own pods reach the (unauthenticated) worker port."""
  run = {"matchLabels": {RUN_LABEL: args.name}}
  return {
      "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
      "metadata": {"name": f"{args.name}-workers"},
      "spec": {"podSelector": run, "policyTypes": ["Ingress"],
               "ingress": [{"from": [{"podSelector": run}],
                            "ports": [{"protocol": "TCP",
                                       "port": args.port}]}]},
  }


def indexed_job(args) -> list[dict]:
  """The headless Service, the Indexed Job and the NetworkPolicy."""
  env = [_env("TFHARNESS_SUBDOMAIN", args.name),
         _env("TFHARNESS_JOB_NAME",
              field="metadata.labels['batch.kubernetes.io/job-name']")]
  service = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": args.name},
             "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                      "selector": {RUN_LABEL: args.name}}}
  # A failed worker takes its peers down with it: one restart of the group
  # can count a failure for every pod.
  job = {"apiVersion": "batch/v1", "kind": "Job",
         "metadata": {"name": args.name, "labels": {RUN_LABEL: args.name}},
         "spec": _job_spec(args, _pod(args, env, subdomain=args.name),
                           backoff_limit=args.restarts * args.workers)}
  return [service, job, _network_policy(args)]


def jobset(args) -> list[dict]:
  """The JobSet (one replicated job of `workers` pods) and the NetworkPolicy."""
  label = "metadata.labels['jobset.sigs.k8s.io/{}']".format
  annotation = "metadata.annotations['jobset.sigs.k8s.io/{}']".format
  env = [_env("TFHARNESS_SUBDOMAIN", args.name),
         _env("TFHARNESS_JOBSET_NAME", field=label("jobset-name")),
         _env("TFHARNESS_REPLICATED_JOB", field=label("replicatedjob-name")),
         _env("TFHARNESS_JOB_INDEX", field=annotation("job-index")),
         _env("TFHARNESS_REPLICATED_JOB_REPLICAS",
              field=annotation("replicatedjob-replicas"))]
  job_spec = _job_spec(args, _pod(args, env, subdomain=None), backoff_limit=0)
  resource = {
      "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
      "metadata": {"name": args.name, "labels": {RUN_LABEL: args.name}},
      "spec": {
          "network": {"enableDNSHostnames": True, "subdomain": args.name,
                      "publishNotReadyAddresses": True},
          # A Job fails on exit 2/3 (FailJob: reason PodFailurePolicy) or on
          # any other failure (backoffLimit 0); only the latter restarts.
          "failurePolicy": {"maxRestarts": args.restarts, "rules": [
              {"name": "badInputOrStorage", "action": "FailJobSet",
               "onJobFailureReasons": ["PodFailurePolicy"]}]},
          "replicatedJobs": [{"name": "workers", "replicas": 1,
                              "template": {"spec": job_spec}}],
      },
  }
  return [resource, _network_policy(args)]


def _scalar(value) -> str:
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, int):
    return str(value)
  text = str(value)
  if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
    return text
  return json.dumps(text)  # A YAML double-quoted scalar.


def _lines(value, indent: str) -> list[str]:
  """Block-style YAML of a dict's or list's items."""
  lines = []
  items = value.items() if isinstance(value, dict) else enumerate(value)
  for key, item in items:
    head = f"{indent}{key}:" if isinstance(value, dict) else f"{indent}-"
    if isinstance(item, (dict, list)) and item:
      if isinstance(value, list) and isinstance(item, dict):
        inner = _lines(item, indent + "  ")
        lines.append(f"{head} {inner[0].lstrip()}")
        lines.extend(inner[1:])
      else:
        lines.append(head)
        lines.extend(_lines(item, indent + "  "))
    elif isinstance(item, (dict, list)):
      lines.append(f"{head} {'{}' if isinstance(item, dict) else '[]'}")
    else:
      lines.append(f"{head} {_scalar(item)}")
  return lines


def to_yaml(resources: list[dict], header: str = "") -> str:
  """`resources` as one multi-document YAML text."""
  docs = ["\n".join(_lines(resource, "")) + "\n" for resource in resources]
  return header + "---\n" + "---\n".join(docs)


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m launch.deploy.render",
      usage="%(prog)s --kind=jobset|indexed-job --name=N --workers=W"
            " --image=I --model_dir_claim=C [options] -- HARNESS_FLAGS",
      description=__doc__.split("\n\n")[2])
  add = parser.add_argument
  add("--kind", required=True, choices=["jobset", "indexed-job"])
  add("--name", required=True, help="the JobSet's or Job's name")
  add("--workers", required=True, type=int, help="training pods")
  add("--image", required=True, help="a container image with the harness")
  add("--model_dir_claim", required=True,
      help="a ReadWriteMany PersistentVolumeClaim, mounted at /runs")
  add("--data_claim", default="", help="a claim mounted read-only at /data")
  add("--command", default=DEFAULT_COMMAND,
      help="what each pod runs, e.g. \"python my_train.py\" for a script"
           " calling launch.fit (then it sets model_dir under /runs)")
  add("--gpus", type=int, default=0, help="GPUs per pod (nvidia.com/gpu)")
  add("--port", type=int, default=DEFAULT_PORT)
  add("--grace_seconds", type=int, default=120,
      help="terminationGracePeriodSeconds: time to save after SIGTERM")
  add("--restarts", type=int, default=3,
      help="restarts of the workers after a failure")
  return parser


def _check(args) -> None:
  if not _NAME.match(args.name) or len(args.name) > 40:
    raise RenderError(f"--name={args.name!r} must be a DNS label of at most 40"
                      " lowercase letters, digits and '-', so that the pods'"
                      " hostnames fit in 63 characters.")
  for name in ("workers", "grace_seconds"):
    if getattr(args, name) < 1:
      raise RenderError(f"--{name} must be at least 1.")
  if args.restarts < 0 or args.gpus < 0 or not 0 < args.port < 65536:
    raise RenderError("--restarts and --gpus must be at least 0 and --port"
                      " from 1 to 65535.")
  if not shlex.split(args.command):
    raise RenderError("--command must name a program.")
  if args.command == DEFAULT_COMMAND and not any(
      re.match(r"--model_dir=/runs/.", flag) for flag in args.harness_args):
    raise RenderError("the harness flags after -- must set --model_dir=/runs/"
                      "NAME, a directory on the claim every pod mounts at"
                      " /runs.")


def render(argv: list[str]) -> str:
  """The manifests' YAML for the command line `argv` (without the program).

  Raises:
    RenderError: For a bad option.
  """
  split = argv.index("--") if "--" in argv else len(argv)
  args = _parser().parse_args(argv[:split])
  args.harness_args = argv[split + 1:]
  _check(args)
  header = ("# Written by: python -m launch.deploy.render "
            + shlex.join(argv) + "\n" + _HEADER)
  return to_yaml(jobset(args) if args.kind == "jobset"
                 else indexed_job(args), header)


def main(argv: list[str] | None = None) -> int:
  try:
    sys.stdout.write(render(sys.argv[1:] if argv is None else argv))
  except RenderError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
