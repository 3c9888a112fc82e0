#!/usr/bin/env python3
"""Offline checks of the CdcPipeline CRD and of the example pipelines.

1. `kubernetes-validate --strict` validates crds/cdcpipeline.yaml as a CustomResourceDefinition of the
   given Kubernetes version (default 1.33.0).
2. Every CdcPipeline in examples/*.yaml is validated with jsonschema against the CRD's
   openAPIV3Schema, read the way the apiserver reads it: `nullable` allows null, int-or-string
   fields take both, and unknown fields are errors (kubectl's default strict field validation), so a
   YAML slip that creates a stray key fails here rather than being pruned silently.

CEL rules (x-kubernetes-validations) are not evaluated here; the crds crate's unit tests evaluate
them on the same example.

Run with the project's venv (kubernetes-validate, jsonschema, pyyaml):
    .services/venv/bin/python scripts/check-crd.py [--kubernetes-version 1.33.0]
Exits 0 when everything passes, 1 with a message per failure otherwise.
"""

from __future__ import annotations

import argparse
import copy
import glob
import os
import shutil
import subprocess
import sys

try:
    import jsonschema
    import yaml
except ImportError as err:  # pragma: no cover - environment problem
    sys.exit(
        f"check-crd: missing Python package ({err.name}); run it with the venv that "
        "scripts/services.sh creates: .services/venv/bin/python scripts/check-crd.py"
    )

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRD_PATH = os.path.join(ROOT, "crds", "cdcpipeline.yaml")
EXAMPLES = os.path.join(ROOT, "examples", "*.yaml")


def kubernetes_validate_command() -> str:
    """The kubernetes-validate next to this interpreter, else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("kubernetes-validate")
    if found is None:
        sys.exit("check-crd: kubernetes-validate not found; install it in the venv (pip install kubernetes-validate)")
    return found


def check_crd_with_kubernetes_validate(version: str) -> list[str]:
    result = subprocess.run(
        [kubernetes_validate_command(), "--strict", "-k", version, CRD_PATH],
        capture_output=True,
        text=True,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "ERROR" in output or "WARN" in output:
        return [f"{os.path.relpath(CRD_PATH, ROOT)}: kubernetes-validate --strict -k {version} failed:\n{output}"]
    print(output)
    return []


def as_json_schema(node):
    """Translate an OpenAPI v3 structural schema into plain JSON Schema (draft 7)."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: as_json_schema(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema and "additionalProperties" not in schema and not preserve:
        schema["additionalProperties"] = False
    return schema


def load_crd() -> dict:
    with open(CRD_PATH, encoding="utf-8") as handle:
        crd = yaml.safe_load(handle)
    if crd.get("kind") != "CustomResourceDefinition":
        sys.exit(f"check-crd: {CRD_PATH} is not a CustomResourceDefinition")
    return crd


def check_examples(crd: dict) -> list[str]:
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    schemas = {}
    for version in crd["spec"]["versions"]:
        schema = as_json_schema(version["schema"]["openAPIV3Schema"])
        # The apiserver defines these three at the root of every resource.
        schema.setdefault("properties", {}).update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
        )
        schemas[f"{group}/{version['name']}"] = schema
    failures = []
    checked = 0
    for path in sorted(glob.glob(EXAMPLES)):
        relative = os.path.relpath(path, ROOT)
        with open(path, encoding="utf-8") as handle:
            try:
                documents = [doc for doc in yaml.safe_load_all(handle) if doc]
            except yaml.YAMLError as err:
                failures.append(f"{relative}: not valid YAML: {err}")
                continue
        for index, document in enumerate(documents):
            if document.get("kind") != kind:
                continue
            checked += 1
            name = document.get("metadata", {}).get("name", f"document {index}")
            schema = schemas.get(document.get("apiVersion"))
            if schema is None:
                failures.append(
                    f"{relative}: {kind} {name}: apiVersion {document.get('apiVersion')!r} is not served "
                    f"by the CRD (served: {', '.join(sorted(schemas))})"
                )
                continue
            validator = jsonschema.Draft7Validator(copy.deepcopy(schema))
            errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
            for error in errors:
                location = ".".join(str(part) for part in error.absolute_path) or "(root)"
                failures.append(f"{relative}: {kind} {name}: {location}: {error.message}")
            if not errors:
                print(f"{relative}: {kind} {name} matches the CRD schema")
    if checked == 0:
        failures.append(f"no {kind} found in {os.path.relpath(EXAMPLES, ROOT)}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", "-k", default="1.33.0")
    args = parser.parse_args()
    failures = check_crd_with_kubernetes_validate(args.kubernetes_version)
    failures += check_examples(load_crd())
    for failure in failures:
        print(f"check-crd: FAIL {failure}", file=sys.stderr)
    if failures:
        print(f"check-crd: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("check-crd: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
