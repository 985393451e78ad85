"""Writes jobset-v1alpha2-schema.json from JobSet's CRD (run by hand, once).

Source: kubernetes-sigs/jobset v0.12.0 (commit b16bcb1b7b23), file
config/components/crd/bases/jobset.x-k8s.io_jobsets.yaml, the
openAPIV3Schema of version v1alpha2. Kept: `spec` without descriptions.
Changed, so that a jsonschema validator behaves as `kubectl apply` (strict
field validation, the default since Kubernetes 1.27): every object with
`properties` and no `x-kubernetes-preserve-unknown-fields` gets
`additionalProperties: false`, so an unknown (misspelled) field fails.
Left out: `replicatedJobs[].template.spec`, a batch/v1 JobSpec, which the
tests validate as a Job with kubernetes-validate's Kubernetes schema.

  python tests/launch/data/vendor_jobset_schema.py jobset.x-k8s.io_jobsets.yaml
"""

import json
import os
import sys

import yaml


def _strict(node):
  if isinstance(node, dict):
    node.pop("description", None)
    for value in node.values():
      _strict(value)
    if ("properties" in node and
        not node.get("x-kubernetes-preserve-unknown-fields")):
      node.setdefault("additionalProperties", False)
  elif isinstance(node, list):
    for value in node:
      _strict(value)
  return node


def main(crd_path: str) -> None:
  with open(crd_path, encoding="utf-8") as stream:
    crd = yaml.safe_load(stream)
  version, = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha2"]
  root = version["schema"]["openAPIV3Schema"]
  spec = root["properties"]["spec"]
  template = spec["properties"]["replicatedJobs"]["items"]["properties"][
      "template"]
  template["properties"]["spec"] = {"type": "object"}
  schema = {
      "$comment": "JobSet v0.12.0 CRD (kubernetes-sigs/jobset b16bcb1b7b23),"
                  " v1alpha2 spec; see vendor_jobset_schema.py",
      "type": "object",
      "required": ["apiVersion", "kind", "metadata", "spec"],
      "properties": {
          "apiVersion": {"const": "jobset.x-k8s.io/v1alpha2"},
          "kind": {"const": "JobSet"},
          "metadata": {"type": "object"},
          "spec": _strict(spec),
      },
      "additionalProperties": False,
  }
  out = os.path.join(os.path.dirname(__file__), "jobset-v1alpha2-schema.json")
  with open(out, "w", encoding="utf-8") as stream:
    json.dump(schema, stream, indent=None, separators=(",", ":"),
              sort_keys=True)
    stream.write("\n")


if __name__ == "__main__":
  main(sys.argv[1])
