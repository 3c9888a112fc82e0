#!/usr/bin/env python3
"""The small kubelet (scripts/kubelet.py) fails where a cluster would.

Runs the kubelet on hand-written manifests (served by a stand-in `cdcstar-operator plan`) whose
`cdcstar-api` image runs a small HTTP server, once as it should behave and once for each way a real
pod breaks: a server on 127.0.0.1 only (probes go to the pod IP), a write to the read-only root
filesystem, a non-zero exit on SIGTERM, a Service targeting a port no container declares, a config
interpolating a variable its env does not set. The well-behaved pod must see what a kubelet gives
it: its Secret and ConfigMap, its pod name, its user, and no write access to `/`.

Needs root (namespaces); prints `kubelet checks: N passed, M failed`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PORT = 8080

FAKE_SERVER = r'''#!/usr/bin/env python3
import http.server, json, os, signal, sys
mode = os.environ["FAKE_MODE"]
if mode == "writes-root":
    open("/cdcstar-kubelet-test", "w").close()
try:
    open("/cdcstar-kubelet-test", "w").close()
    root_writable = True
except OSError:
    root_writable = False
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"uid": os.getuid(), "gid": os.getgid(), "secret": os.environ.get("FAKE_SECRET"),
                           "pod": os.environ.get("POD_NAME"), "root_writable": root_writable,
                           "config": open("/etc/fake/config.yaml").read()}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1" if mode == "loopback-only" else "0.0.0.0", int(os.environ["PORT"])), Handler)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(3 if mode == "bad-exit" else 0))
server.serve_forever()
'''

FAKE_OPERATOR = '''#!/bin/sh
case "$1" in
    plan) cat "$FAKE_PLAN" ;;
    provision|deprovision) echo "$1: stand-in" ;;
esac
'''

CHECK_POD = f'''
import json, sys, urllib.request
seen = json.load(urllib.request.urlopen("http://127.0.0.1:{{port}}/"))
expected = {{"uid": 65532, "gid": 65532, "secret": "s3cret", "root_writable": False, "config": "answer: 42\\n"}}
wrong = {{k: seen[k] for k in expected if seen[k] != expected[k]}}
if wrong or not seen["pod"].startswith("fake-api-"):
    sys.exit(f"the pod saw {{seen}}")
'''


def manifests(mode: str, service_port: str = "http", connect_config: str | None = None) -> list[dict]:
    labels = {"app": "fake-api"}
    container = {
        "name": "api", "image": "cdcstar-api:test", "command": ["cdcstar-api"],
        "env": [
            {"name": "PORT", "value": str(PORT)},
            {"name": "FAKE_MODE", "value": mode},
            {"name": "FAKE_SECRET", "valueFrom": {"secretKeyRef": {"name": "fake", "key": "secret"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1},
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/fake", "readOnly": True}],
    }
    objects = [
        {"kind": "ConfigMap", "metadata": {"name": "fake-config"}, "data": {"config.yaml": "answer: 42\n"}},
        {"kind": "Deployment", "metadata": {"name": "fake-api"}, "spec": {
            "replicas": 1, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": 5, "containers": [container],
                "volumes": [{"name": "config", "configMap": {"name": "fake-config"}}]}}}},
        {"kind": "Service", "metadata": {"name": "fake-api"}, "spec": {
            "selector": labels, "ports": [{"port": 80, "targetPort": service_port}]}},
    ]
    if connect_config is not None:
        objects.append({"kind": "ConfigMap", "metadata": {"name": "fake-connect"},
                        "data": {"connect.yaml": connect_config}})
        objects.append({"kind": "Deployment", "metadata": {"name": "fake-connect"}, "spec": {
            "selector": {"matchLabels": {"app": "connect"}},
            "template": {"metadata": {"labels": {"app": "connect"}}, "spec": {
                "containers": [{"name": "connect", "image": "redpandadata/connect:4",
                                "env": [{"name": "SET", "value": "x"}],
                                "volumeMounts": [{"name": "c", "mountPath": "/etc/connect"}]}],
                "volumes": [{"name": "c", "configMap": {"name": "fake-connect"}}]}}}})
    return objects


def run_kubelet(work: Path, objects: list[dict], *extra: str) -> subprocess.CompletedProcess:
    plan = work / "plan.yaml"
    plan.write_text(yaml.safe_dump_all(objects))
    pipeline = work / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({
        "metadata": {"name": "fake"},
        "spec": {"source": {"connectionSecretRef": {"name": "pg", "key": "dsn"}},
                 "kafka": {"brokers": []}, "clickhouse": {"url": ""}},
    }))
    env = {
        **os.environ, "FAKE_PLAN": str(plan),
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgresql://u@127.0.0.1:55432/x"),
        "KAFKA_BROKERS": os.environ.get("KAFKA_BROKERS", "127.0.0.1:19092"),
        "CLICKHOUSE_URL": os.environ.get("CLICKHOUSE_URL", "http://127.0.0.1:18123"),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kubelet.py"), "--pipeline", str(pipeline),
         "--bin-dir", str(work / "bin"), "--logs", str(work / "logs"), "--work-dir", str(work / "run"),
         "--source-dsn", "unused", "--secret", "fake/secret=s3cret", "--ready-timeout", "6", *extra],
        env=env, capture_output=True, text=True, timeout=120,
    )


def main() -> int:
    if os.geteuid() != 0:
        print("kubelet checks: need root (namespaces)", file=sys.stderr)
        return 1
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "bin").mkdir()
        for name, text in {"cdcstar-api": FAKE_SERVER, "cdcstar-operator": FAKE_OPERATOR}.items():
            (work / "bin" / name).write_text(text)
            (work / "bin" / name).chmod(0o755)
        port = subprocess.run([str(ROOT / "scripts" / "free-port.py")], capture_output=True, text=True,
                              check=True).stdout.strip()
        check_pod = ["--", sys.executable, "-c", CHECK_POD.replace("{port}", port)]
        cases = [
            ("a well-behaved pod runs, sees its Secret, ConfigMap, name and user, and stops cleanly",
             manifests("good"), ["--port-forward", f"fake-api={port}", *check_pod], 0, None),
            ("a server listening on 127.0.0.1 only never becomes ready (probes go to the pod IP)",
             manifests("loopback-only"), ["--", "true"], 1, "not ready after"),
            ("a write to the read-only root filesystem fails the pod",
             manifests("writes-root"), ["--", "true"], 1, "Read-only file system"),
            ("a non-zero exit on SIGTERM fails the run",
             manifests("bad-exit"), ["--", "true"], 1, "exited with 3 after SIGTERM"),
            ("a Service targeting an undeclared port is refused",
             manifests("good", service_port="metrics"), ["--", "true"], 1, "which no container names"),
            ("a config interpolating a variable its env lacks is refused",
             manifests("good", connect_config="a: ${SET}\nb: ${UNSET}\n"), ["--resolve-only"], 1, "${UNSET}"),
        ]
        for title, objects, extra, expected_code, expected_text in cases:
            result = run_kubelet(work, objects, *extra)
            output = result.stdout + result.stderr
            for log in sorted((work / "logs").glob("*.log")):
                output += log.read_text(errors="replace")
                log.unlink()
            ok = (result.returncode == 0) == (expected_code == 0) and (
                expected_text is None or expected_text in output)
            if ok:
                passed += 1
                print(f"ok: {title}")
            else:
                failed += 1
                print(f"FAILED: {title} (exit {result.returncode}):\n{output}")
    print(f"kubelet checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
