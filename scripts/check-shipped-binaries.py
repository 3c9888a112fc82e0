#!/usr/bin/env python3
"""The binaries as the image ships them, started far enough to fail the way a cluster would see.

1. Builds them with the exact `cargo build` command and build environment of docker/Dockerfile (read
   from the Dockerfile itself, so the two cannot drift apart).
2. Starts each binary once (`--version`): it links and runs.
3. Starts the operator against a local HTTPS endpoint that stands in for the Kubernetes API server
   (a CA and a server certificate made with openssl, a kubeconfig trusting that CA): the operator
   must complete its first TLS request (the startup list of CdcPipelines) without panicking. The
   rustls crypto-provider panic of an operator built together with the other binaries happened
   exactly there.

Prints `shipped binaries: N passed, M failed` and exits non-zero on any failure.
"""

from __future__ import annotations

import base64
import importlib.util
import http.server
import json
import os
import re
import shlex
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.request
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def dockerfile_build() -> tuple[list[str], dict[str, str], list[str]]:
    """The build stage's `cargo build` argv, its ENV, and the binaries it builds."""
    text = DOCKERFILE.read_text()
    joined = re.sub(r"\\\n", " ", text)
    env: dict[str, str] = {}
    build: list[str] | None = None
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("ENV "):
            for assignment in shlex.split(line[4:]):
                key, _, value = assignment.partition("=")
                env[key] = value
        if line.startswith("RUN ") and "cargo build" in line:
            command = line[line.index("cargo build"):].split("&&")[0]
            build = shlex.split(command)
    if build is None:
        raise SystemExit("no `cargo build` RUN step found in docker/Dockerfile")
    binaries = [build[i + 1] for i, word in enumerate(build) if word == "--bin"]
    return build, env, binaries


def free_port() -> int:
    """scripts/free-port.py's: a free port below the kernel's ephemeral range."""
    spec = importlib.util.spec_from_file_location("free_port", ROOT / "scripts" / "free-port.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.free_port()


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (rustls refuses a CA as the leaf)."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
        "-days", "1", "-subj", "/CN=cdcstar-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "1", "-extfile", str(ext))
    return ca_crt, crt, key


class FakeApiServer(http.server.ThreadingHTTPServer):
    """Answers the operator's startup list with an empty list and everything else with 404."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]):
        super().__init__(address, Handler)
        self.requests: list[str] = []


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server.requests.append(f"GET {self.path}")
        if self.path.startswith("/apis/cdcstar.dev/v1alpha1/cdcpipelines") and "watch" not in self.path:
            body = {"apiVersion": "cdcstar.dev/v1alpha1", "kind": "CdcPipelineList",
                    "metadata": {"resourceVersion": "1"}, "items": []}
            self.reply(200, body)
        else:
            self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "NotFound", "code": 404, "message": "not served by the fake"})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# What the binaries export, for scripts/check-monitoring.py (scripts/kubelet.py adds the pods').
METRICS_DIR = Path(os.environ.get("CDCSTAR_METRICS_DIR", ROOT / ".services" / "exported-metrics"))


def save_metrics(port: int, name: str) -> None:
    """Saves what a running binary serves at /metrics as METRICS_DIR/<name>.metrics."""
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        (METRICS_DIR / f"{name}.metrics").write_bytes(response.read())


def operator_completes_its_first_tls_request(binary: Path, work: Path) -> str | None:
    ca_crt, crt, key = make_certificates(work)
    port = free_port()
    server = FakeApiServer(("127.0.0.1", port))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {
            "server": f"https://127.0.0.1:{port}",
            "certificate-authority-data": base64.b64encode(ca_crt.read_bytes()).decode()}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "default"}}],
    }))
    env = {"PATH": os.environ.get("PATH", ""), "KUBECONFIG": str(kubeconfig), "RUST_BACKTRACE": "1"}
    log = work / "operator.log"
    with log.open("w") as out:
        metrics_port = free_port()
        process = subprocess.Popen([str(binary), "run", "--leader-election=false",
                                    f"--metrics-port={metrics_port}"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and process.poll() is None:
            if any("/cdcpipelines" in r for r in server.requests):
                time.sleep(1)  # let it go on past the first response
                break
            time.sleep(0.1)
        exited = process.poll()
        if exited is None:
            save_metrics(metrics_port, "operator")
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    server.shutdown()
    output = log.read_text()
    if "panicked" in output:
        return "the operator panicked:\n" + output[-2000:]
    if not any("/cdcpipelines" in r for r in server.requests):
        state = f"exited with {exited}" if exited is not None else "still running"
        return f"no request reached the API server over TLS in 20 s ({state}):\n" + output[-2000:]
    return None


def main() -> int:
    build, build_env, binaries = dockerfile_build()
    passed = failed = 0

    def result(name: str, problem: str | None) -> None:
        nonlocal passed, failed
        if problem is None:
            print(f"PASS {name}")
            passed += 1
        else:
            print(f"FAIL {name}: {problem}")
            failed += 1

    print(f"shipped binaries: building as docker/Dockerfile does: {' '.join(build)} "
          f"(env {' '.join(f'{k}={v}' for k, v in sorted(build_env.items()))})", flush=True)
    env = {**os.environ, **build_env}
    if subprocess.run(build, cwd=ROOT, env=env).returncode != 0:
        result("build", "cargo build as in docker/Dockerfile failed")
        print(f"shipped binaries: {passed} passed, {failed} failed")
        return 1
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    for binary in binaries:
        run = subprocess.run([str(target / binary), "--version"], capture_output=True, text=True)
        result(f"{binary} starts", None if run.returncode == 0 else run.stderr[-1000:])
    if "cdcstar-operator" in binaries:
        with tempfile.TemporaryDirectory() as work:
            result("cdcstar-operator completes its first TLS request to the API server",
                   operator_completes_its_first_tls_request(target / "cdcstar-operator", Path(work)))
    else:
        result("the Dockerfile builds cdcstar-operator", "no --bin cdcstar-operator in its cargo build")
    print(f"shipped binaries: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
