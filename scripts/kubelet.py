#!/usr/bin/env python3
"""A small kubelet: runs what the operator would deploy for a pipeline, as local processes.

The manifests are the operator's own output (`cdcstar-operator plan --manifests-only`) and the
databases are provisioned by the operator's own phases (`cdcstar-operator provision`), so what runs
here is what a cluster would run. Each replica of each Deployment becomes a pod:

- a network namespace of its own (loopback only, plus the pod's IP on it), entered by every
  container of the pod; the local services (Postgres, the broker, ClickHouse, read from
  DATABASE_URL, KAFKA_BROKERS and CLICKHOUSE_URL) are forwarded into it at their usual addresses, so
  two pods can both listen on 9090 and a binary that listens on 127.0.0.1 only fails its probes;
- a mount namespace of its own: the image's files (the binaries docker/Dockerfile copies, read from
  the Dockerfile) at their image paths, ConfigMap, Secret and emptyDir volumes at their mountPaths,
  read-only where the manifest says so, and a read-only root filesystem when the securityContext
  asks for one;
- the container's command and args (the image's ENTRYPOINT when there is no command), its env
  (plain values, secretKeyRef, configMapKeyRef, fieldRef metadata.name/namespace), run as the
  securityContext's user and group (the image's USER otherwise), without capabilities;
- its readiness probe waited for, its liveness probe checked for as long as the pod runs, and on
  stop SIGTERM with the pod's grace period: a container that does not exit 0 fails the run.

Images that docker/Dockerfile does not build (Redpanda Connect) are resolved but not run: their env,
volumes and the YAML files they mount must resolve and parse. Services must select a pod template
and name its ports. `--port-forward SERVICE=PORT` forwards a local port to a Service's first port,
as `kubectl port-forward` does.

    scripts/kubelet.py --pipeline examples/shop-pipeline.yaml --bin-dir target/release \\
        --secret shop-postgres/dsn=postgresql://... --port-forward shop-api=3002 -- COMMAND...

With --run-jobs, once COMMAND has succeeded, each Job (a requested resync) and each CronJob's job
template (the scheduled verification) runs once as a pod of its own, to completion: it must exit 0.

runs COMMAND once every pod is ready (KUBELET_LOGS names the pods' log directory), then stops the
pods and runs the finalizer's cleanup (`cdcstar-operator deprovision`; --keep-slot skips it).
Without COMMAND it runs until SIGINT/SIGTERM. Needs root (namespaces, mounts); Linux only.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"
CLONE_NEWNET = 0x40000000
# The PATH of the distroless runtime image.
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_libc = ctypes.CDLL(None, use_errno=True)


class KubeletError(Exception):
    """What a kubelet would report as a failed pod or an invalid manifest."""


def log(message: str) -> None:
    print(f"kubelet: {message}", file=sys.stderr, flush=True)


# --- images -------------------------------------------------------------------------------------


@dataclass
class Image:
    """What a docker/Dockerfile target puts in its image."""

    files: dict[str, str]  # path in the image -> name of the binary built by cargo
    entrypoint: list[str]
    user: tuple[int, int]


def dockerfile_images() -> dict[str, Image]:
    """Each final stage of docker/Dockerfile (by target name) with its files, ENTRYPOINT and USER."""
    stages: dict[str, Image] = {}
    current = None
    for raw in re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines():
        line = raw.strip()
        if line.startswith("FROM "):
            words = line.split()
            parent, current = words[1], words[3] if len(words) > 3 else None
            if current:
                base = stages.get(parent)
                stages[current] = Image(dict(base.files), list(base.entrypoint), base.user) if base else Image({}, [], (0, 0))
        elif current and line.startswith("COPY --from=build"):
            source, destination = line.split()[-2:]
            stages[current].files[destination] = Path(source).name
        elif current and line.startswith("ENTRYPOINT "):
            stages[current].entrypoint = yaml.safe_load(line[len("ENTRYPOINT "):])
        elif current and line.startswith("USER "):
            user, _, group = line.split()[1].partition(":")
            stages[current].user = (int(user), int(group or user))
    return {name: image for name, image in stages.items() if image.files}


def image_target(image: str) -> str:
    """`registry/path/cdcstar-sink:0.1.0` -> `sink`."""
    name = image.rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    return name.removeprefix("cdcstar-")


# --- network namespaces -------------------------------------------------------------------------


def in_netns(netns: str, make):
    """Runs `make()` (which creates a socket) in the network namespace at path `netns`: a socket
    keeps the namespace it was created in, whichever thread uses it later."""
    result: dict = {}

    def run() -> None:
        try:
            with open(netns) as handle:
                if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns({netns}) failed")
            result["value"] = make()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_forward(listener: socket.socket, connect) -> None:
    """Accepts on `listener` and joins each connection to `connect()`, until the listener closes."""

    def loop() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = connect()
            except OSError:
                client.close()
                continue
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def listen(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(64)
    return listener


def service_addresses() -> list[tuple[str, int]]:
    """The local services' addresses, from the variables scripts/services.sh exports."""
    addresses = []
    for variable in ("DATABASE_URL", "CLICKHOUSE_URL"):
        url = urlsplit(os.environ[variable])
        addresses.append((url.hostname, url.port))
    for broker in os.environ["KAFKA_BROKERS"].split(","):
        host, _, port = broker.strip().rpartition(":")
        addresses.append((host, int(port)))
    return addresses


# --- manifests ----------------------------------------------------------------------------------


@dataclass
class Objects:
    config_maps: dict[str, dict]
    secrets: dict[str, dict[str, str]]
    deployments: list[dict]
    services: list[dict]
    # (name, pod template) of each Job, and of each CronJob's job template: run by --run-jobs.
    jobs: list[tuple[str, dict]] = field(default_factory=list)


def config_map_value(objects: Objects, name: str, key: str) -> str:
    data = objects.config_maps.get(name)
    if data is None:
        raise KubeletError(f"ConfigMap {name} is not among the manifests")
    if key not in data:
        raise KubeletError(f"ConfigMap {name} has no key {key}")
    return data[key]


def secret_value(objects: Objects, name: str, key: str) -> str:
    data = objects.secrets.get(name)
    if data is None or key not in data:
        raise KubeletError(f"Secret {name} key {key} is not given (--secret {name}/{key}=VALUE)")
    return data[key]


def resolve_env(container: dict, objects: Objects, pod: str, namespace: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            env[name] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var.get("value", ""))
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            secret = "secretKeyRef" in source
            ref = source["secretKeyRef" if secret else "configMapKeyRef"]
            try:
                env[name] = (secret_value if secret else config_map_value)(objects, ref["name"], ref["key"])
            except KubeletError:
                if not ref.get("optional"):
                    raise
        elif "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            values = {"metadata.name": pod, "metadata.namespace": namespace}
            if path not in values:
                raise KubeletError(f"env {name}: fieldRef {path} is not supported by this kubelet")
            env[name] = values[path]
        else:
            raise KubeletError(f"env {name}: unsupported valueFrom {sorted(source)}")
    return env


def volume_files(volume: dict, objects: Objects) -> dict[str, str] | None:
    """The files of a ConfigMap or Secret volume (None for an emptyDir)."""
    if "emptyDir" in volume:
        return None
    if "configMap" in volume:
        source, lookup = volume["configMap"], config_map_value
        data = objects.config_maps.get(source["name"])
    elif "secret" in volume:
        source, lookup = volume["secret"], secret_value
        source = {**source, "name": source["secretName"]}
        data = objects.secrets.get(source["name"])
    else:
        raise KubeletError(f"volume {volume['name']}: unsupported kind {sorted(volume)}")
    if data is None:
        if source.get("optional"):
            return {}
        kind = "ConfigMap" if "configMap" in volume else "Secret"
        raise KubeletError(f"volume {volume['name']}: {kind} {source['name']} does not exist")
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    return {item["path"]: lookup(objects, source["name"], item["key"]) for item in items}


def check_mounted_yaml(files: dict[str, str], what: str) -> None:
    for path, text in files.items():
        if path.endswith((".yaml", ".yml")):
            try:
                yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise KubeletError(f"{what}: {path} is not valid YAML: {error}") from error


def named_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return declared["containerPort"]
    raise KubeletError(f"container {container['name']} has no port named {port}")


def check_services(objects: Objects) -> None:
    """Every Service selects a pod template and targets ports its containers declare."""
    for service in objects.services:
        name, spec = service["metadata"]["name"], service["spec"]
        selector = spec.get("selector") or {}
        templates = [
            d["spec"]["template"] for d in objects.deployments
            if selector and selector.items() <= (d["spec"]["template"]["metadata"].get("labels") or {}).items()
        ]
        if not templates:
            raise KubeletError(f"Service {name} selects no pod template (selector {selector})")
        for port in spec["ports"]:
            target = port.get("targetPort", port["port"])
            containers = templates[0]["spec"]["containers"]
            if isinstance(target, int):
                declared = [p["containerPort"] for c in containers for p in c.get("ports") or []]
                if target not in declared:
                    raise KubeletError(f"Service {name} targets port {target}, which no container declares")
            elif not any(p.get("name") == target for c in containers for p in c.get("ports") or []):
                raise KubeletError(f"Service {name} targets port {target}, which no container names")


# --- pods ---------------------------------------------------------------------------------------


@dataclass
class Container:
    name: str
    manifest: dict
    log_path: Path
    launch: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    ready: bool = False
    restarts_before_ready: int = 0
    liveness_failures: int = 0
    failure: str | None = None


@dataclass
class Pod:
    name: str
    ip: str
    pause: subprocess.Popen
    netns: str
    grace_seconds: int
    labels: dict[str, str]
    listeners: list[socket.socket] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)


class Kubelet:
    def __init__(self, args: argparse.Namespace, objects: Objects, namespace: str) -> None:
        self.args = args
        self.objects = objects
        self.namespace = namespace
        self.images = dockerfile_images()
        self.work = Path(args.work_dir)
        self.logs = Path(args.logs)
        self.pods: list[Pod] = []
        self.created_dirs: list[Path] = []
        self.stopping = threading.Event()

    # -- pod sandbox

    def start_pod(self, name: str, template: dict) -> Pod:
        pod_spec = template["spec"]
        pause = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"])
        netns = f"/proc/{pause.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(netns) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline:
                raise KubeletError(f"pod {name}: no network namespace after 5 s")
            time.sleep(0.01)
        ip = f"10.244.0.{len(self.pods) + 2}"
        subprocess.run(["nsenter", f"--net={netns}", "--", "sh", "-c",
                        f"ip link set lo up && ip addr add {ip}/32 dev lo"], check=True)
        pod = Pod(name, ip, pause, netns, pod_spec.get("terminationGracePeriodSeconds", 30),
                  template["metadata"].get("labels") or {})
        self.pods.append(pod)
        for host, port in service_addresses():
            listener = in_netns(netns, lambda h=host, p=port: listen(h, p))
            pod.listeners.append(listener)
            serve_forward(listener, lambda h=host, p=port: socket.create_connection((h, p)))
        return pod

    def connect_to_pod(self, pod: Pod, port: int, timeout: float = 5) -> socket.socket:
        return in_netns(pod.netns, lambda: socket.create_connection((pod.ip, port), timeout=timeout))

    def http_get(self, pod: Pod, port: int, path: str, timeout: float) -> tuple[int, bytes]:
        """GET `path` on the pod's IP, as a kubelet's probe or a scrape does: status and body."""
        connection = http.client.HTTPConnection(pod.ip, port, timeout=timeout)
        connection.sock = self.connect_to_pod(pod, port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    # -- containers

    def mount_point(self, path: str, is_file: bool) -> None:
        """Creates the mount point `path` when missing (removed again at the end)."""
        target = Path(path)
        missing = [p for p in [target, *target.parents] if not p.exists()]
        for p in reversed(missing):
            if p == target and is_file:
                p.touch()
            else:
                p.mkdir()
            self.created_dirs.append(p)

    def container_script(self, container: dict, volumes: dict[str, dict], image: Image, security: dict,
                         pod_dir: Path) -> list[str]:
        """The shell commands that build the container's filesystem view, ending with its exec."""
        steps = []
        image_dirs = sorted({str(Path(p).parent) for p in image.files})
        for directory in image_dirs:
            self.mount_point(directory, is_file=False)
            steps.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(directory)}")
        for path, binary in image.files.items():
            built = Path(self.args.bin_dir).resolve() / binary
            if not built.is_file():
                raise KubeletError(f"{built} is not built (the image {image_target(container['image'])} ships it)")
            steps.append(f"touch {shlex.quote(path)} && mount --bind {shlex.quote(str(built))} {shlex.quote(path)}")
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise KubeletError(f"container {container['name']} mounts {mount['name']}, which the pod does not declare")
            files = volume_files(volume, self.objects)
            source = pod_dir / "volumes" / mount["name"]
            if not source.exists():
                source.mkdir(parents=True)
                if files is None:
                    source.chmod(0o777)
                for relative, text in (files or {}).items():
                    (source / relative).parent.mkdir(parents=True, exist_ok=True)
                    (source / relative).write_text(text)
            if mount.get("subPath"):
                source = source / mount["subPath"]
            self.mount_point(mount["mountPath"], is_file=source.is_file())
            target = shlex.quote(mount["mountPath"])
            steps.append(f"mount --bind {shlex.quote(str(source))} {target}")
            if mount.get("readOnly"):
                steps.append(f"mount -o remount,bind,ro {target}")
        if security.get("readOnlyRootFilesystem"):
            steps.append("mount -o remount,bind,ro /")
        user = security.get("runAsUser", image.user[0])
        group = security.get("runAsGroup", image.user[1])
        if security.get("runAsNonRoot") and user == 0:
            raise KubeletError(f"container {container['name']}: runAsNonRoot, but it would run as root")
        # As Kubernetes does: `command` replaces the ENTRYPOINT; the images have no CMD.
        argv = list(container.get("command") or image.entrypoint) + list(container.get("args") or [])
        steps.append(
            "exec setpriv --reuid={} --regid={} --clear-groups --inh-caps=-all --bounding-set=-all -- {}".format(
                user, group, " ".join(shlex.quote(a) for a in argv)))
        return steps

    def container_launch(self, pod: Pod, container: dict, volumes: dict[str, dict],
                         pod_spec: dict) -> tuple[list[str], dict[str, str]]:
        """The command that runs `container` in `pod` (its filesystem view, then its exec), and its env."""
        image = self.images[image_target(container["image"])]
        security = {**(pod_spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
        pod_dir = self.work / "pods" / pod.name
        steps = self.container_script(container, volumes, image, security, pod_dir)
        env = {"PATH": IMAGE_PATH, "HOSTNAME": pod.name}
        env.update(resolve_env(container, self.objects, pod.name, self.namespace))
        launch = ["nsenter", f"--net={pod.netns}", "--", "unshare", "--mount", "--propagation", "private",
                  "--", "sh", "-ec", "\n".join(steps)]
        return launch, env

    def start_container(self, pod: Pod, container: dict, volumes: dict[str, dict], pod_spec: dict) -> None:
        launch, env = self.container_launch(pod, container, volumes, pod_spec)
        running = Container(container["name"], container, self.logs / f"{pod.name}.{container['name']}.log",
                            launch, env)
        pod.containers.append(running)
        threading.Thread(target=self.supervise, args=(pod, running), daemon=True).start()

    def supervise(self, pod: Pod, container: Container) -> None:
        """restartPolicy Always: restarts the container when it exits, with a doubling back-off (from
        0.5 s, at most 8 s: a kubelet's starts at 10 s). An exit after the container was ready is a
        failure of the run; exits before (the capture waiting for the operator's slot) are counted."""
        backoff = 0.5
        while not self.stopping.is_set():
            with open(container.log_path, "ab") as output:
                container.process = subprocess.Popen(
                    container.launch, env=container.env, stdout=output, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=container.manifest.get("workingDir", "/"),
                    start_new_session=True)
            code = container.process.wait()
            if self.stopping.is_set():
                return
            if container.ready:
                container.failure = f"exited with {code} after it was ready:\n{tail(container.log_path)}"
                return
            container.restarts_before_ready += 1
            log(f"{pod.name}/{container.name} exited with {code} before it was ready; restart "
                f"{container.restarts_before_ready} in {backoff:g} s (log: {container.log_path})")
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 8)

    # -- probes

    def probe(self, pod: Pod, container: Container, probe: dict) -> bool:
        get = probe.get("httpGet")
        if get is None:
            raise KubeletError(f"container {container.name}: only httpGet probes are supported")
        port = named_port(container.manifest, get["port"])
        try:
            status, _ = self.http_get(pod, port, get.get("path", "/"), probe.get("timeoutSeconds", 1))
            return 200 <= status < 400
        except OSError:
            return False

    def wait_ready(self) -> None:
        """Waits until every container's readiness probe passes (probing every 0.2 s rather than every
        periodSeconds, to start fast)."""
        deadline = time.monotonic() + self.args.ready_timeout
        waiting = [(pod, c) for pod in self.pods for c in pod.containers]
        while waiting:
            for pod, container in list(waiting):
                probe = container.manifest.get("readinessProbe")
                if probe is None or self.probe(pod, container, probe):
                    container.ready = True
                    waiting.remove((pod, container))
                    self.watch_liveness(pod, container)
                    log(f"{pod.name}/{container.name} ready ({pod.ip}; log: {container.log_path})")
            if waiting and time.monotonic() > deadline:
                pod, container = waiting[0]
                raise KubeletError(f"{pod.name}/{container.name} not ready after {self.args.ready_timeout} s:\n"
                                   f"{tail(container.log_path)}")
            time.sleep(0.2)

    def watch_liveness(self, pod: Pod, container: Container) -> None:
        probe = container.manifest.get("livenessProbe")

        def loop() -> None:
            if self.stopping.wait(probe.get("initialDelaySeconds", 0)):
                return
            while not self.stopping.wait(probe.get("periodSeconds", 10)):
                if container.failure:
                    return
                if self.probe(pod, container, probe):
                    container.liveness_failures = 0
                    continue
                container.liveness_failures += 1
                if container.liveness_failures >= probe.get("failureThreshold", 3):
                    container.failure = (f"liveness probe failed {container.liveness_failures} times: "
                                         "a kubelet would restart it")
                    return

        if probe is not None:
            threading.Thread(target=loop, daemon=True).start()

    # -- the whole run

    def run_deployments(self) -> None:
        for deployment in self.objects.deployments:
            name = deployment["metadata"]["name"]
            template = deployment["spec"]["template"]
            pod_spec = template["spec"]
            volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
            runnable = all(image_target(c["image"]) in self.images for c in pod_spec["containers"])
            if not runnable:
                self.resolve_only(name, pod_spec, volumes)
                continue
            selector = deployment["spec"]["selector"]["matchLabels"]
            if not selector.items() <= (template["metadata"].get("labels") or {}).items():
                raise KubeletError(f"Deployment {name}: its selector {selector} does not select its own pods")
            digest = hashlib.sha1(yaml.safe_dump(template).encode()).hexdigest()[:10]
            for replica in range(deployment["spec"].get("replicas", 1)):
                pod = self.start_pod(f"{name}-{digest}-{replica}", template)
                for container in pod_spec["containers"]:
                    self.start_container(pod, container, volumes, pod_spec)

    def run_job(self, name: str, template: dict, timeout: float) -> None:
        """One run of a Job's pod (restartPolicy Never, no probes): its containers to completion, each
        of which must exit 0 within `timeout` seconds."""
        pod_spec = template["spec"]
        if pod_spec.get("restartPolicy") not in ("Never", "OnFailure"):
            raise KubeletError(f"Job {name}: restartPolicy must be Never or OnFailure")
        volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
        digest = hashlib.sha1(yaml.safe_dump(template).encode()).hexdigest()[:10]
        pod = self.start_pod(f"{name}-{digest}", template)
        for container in pod_spec["containers"]:
            launch, env = self.container_launch(pod, container, volumes, pod_spec)
            log_path = self.logs / f"{pod.name}.{container['name']}.log"
            log(f"job {name}: running {container['name']} (log: {log_path})")
            started = time.monotonic()
            with open(log_path, "ab") as output:
                process = subprocess.Popen(launch, env=env, stdout=output, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True)
                try:
                    code = process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                    raise KubeletError(f"Job {name}: {container['name']} still running after {timeout:g} s:\n"
                                       f"{tail(log_path)}")
            if code != 0:
                raise KubeletError(f"Job {name}: {container['name']} exited with {code}:\n{tail(log_path)}")
            log(f"job {name}: {container['name']} succeeded in {time.monotonic() - started:.1f} s")

    def resolve_only(self, name: str, pod_spec: dict, volumes: dict[str, dict]) -> None:
        for container in pod_spec["containers"]:
            env = resolve_env(container, self.objects, f"{name}-0", self.namespace)
            for mount in container.get("volumeMounts") or []:
                volume = volumes.get(mount["name"])
                if volume is None:
                    raise KubeletError(f"{name}: mounts {mount['name']}, which the pod does not declare")
                files = volume_files(volume, self.objects) or {}
                check_mounted_yaml(files, f"{name}/{mount['name']}")
                # Redpanda Connect interpolates ${NAME} (or ${NAME:default}) from its environment
                # when it reads its config, and refuses to start on a name without value or default.
                for path, text in files.items():
                    for variable in re.findall(r"\$\{(\w+)\}", text):
                        if variable not in env:
                            raise KubeletError(f"{name}/{container['name']}: {path} uses ${{{variable}}}, "
                                               "which its env does not set")
            why = ("" if image_target(container["image"]) in self.images
                   else f" (image {container['image']} is not built by docker/Dockerfile)")
            log(f"deployment {name}/{container['name']}: not run{why}; its env, volumes and mounted YAML resolve")

    def port_forward(self, service_name: str, local_port: int) -> None:
        service = next((s for s in self.objects.services if s["metadata"]["name"] == service_name), None)
        if service is None:
            raise KubeletError(f"--port-forward: no Service {service_name} among the manifests")
        selector = service["spec"]["selector"]
        pod = next((p for p in self.pods if selector.items() <= p.labels.items()), None)
        if pod is None:
            raise KubeletError(f"--port-forward: Service {service_name} selects no running pod")
        port = service["spec"]["ports"][0]
        target = named_port(pod.containers[0].manifest, port.get("targetPort", port["port"]))
        listener = listen("127.0.0.1", local_port)
        serve_forward(listener, lambda: self.connect_to_pod(pod, target))
        log(f"service {service_name} forwarded to http://127.0.0.1:{local_port}")

    def scrape_metrics(self, directory: Path) -> None:
        """Saves what each running container serves at /metrics on its probe port, as
        `<container>.metrics` (the names scripts/check-monitoring.py checks alerts and dashboards
        against)."""
        directory.mkdir(parents=True, exist_ok=True)
        for pod in self.pods:
            for container in pod.containers:
                probe = container.manifest.get("livenessProbe") or {}
                if "httpGet" not in probe or container.failure:
                    continue
                port = named_port(container.manifest, probe["httpGet"]["port"])
                status, body = self.http_get(pod, port, "/metrics", timeout=5)
                if status == 200:
                    (directory / f"{container.name}.metrics").write_bytes(body)

    def failures(self) -> list[str]:
        return [f"{pod.name}/{c.name}: {c.failure}" for pod in self.pods for c in pod.containers if c.failure]

    def stop(self) -> list[str]:
        """Stops every pod as a kubelet deletes one (SIGTERM, the grace period, SIGKILL); returns the
        containers that did not exit 0."""
        self.stopping.set()
        problems = []
        for pod in self.pods:
            for container in pod.containers:
                if container.process and container.process.poll() is None:
                    container.process.send_signal(signal.SIGTERM)
            for container in pod.containers:
                if container.process is None:
                    continue
                try:
                    code = container.process.wait(timeout=pod.grace_seconds)
                except subprocess.TimeoutExpired:
                    container.process.kill()
                    code = container.process.wait()
                    problems.append(f"{pod.name}/{container.name}: still running {pod.grace_seconds} s "
                                    "after SIGTERM, killed")
                    continue
                if code != 0 and container.failure is None:
                    problems.append(f"{pod.name}/{container.name}: exited with {code} after SIGTERM:\n"
                                    f"{tail(container.log_path)}")
            for listener in pod.listeners:
                listener.close()
            pod.pause.kill()
            pod.pause.wait()
        for path in reversed(self.created_dirs):
            try:
                path.unlink() if path.is_file() else path.rmdir()
            except OSError:
                pass
        return problems


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "    (no log)"


# --- main ---------------------------------------------------------------------------------------


def local_pipeline(source: Path, target: Path) -> dict:
    """The pipeline pointed at the local services (KAFKA_BROKERS, CLICKHOUSE_URL)."""
    pipeline = yaml.safe_load(source.read_text())
    pipeline["spec"]["kafka"]["brokers"] = [b.strip() for b in os.environ["KAFKA_BROKERS"].split(",")]
    pipeline["spec"]["clickhouse"]["url"] = os.environ["CLICKHOUSE_URL"]
    target.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    return pipeline


def operator(args: argparse.Namespace, *command: str, env: dict | None = None) -> str:
    binary = Path(args.bin_dir) / "cdcstar-operator"
    result = subprocess.run([str(binary), *command], capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise KubeletError(f"cdcstar-operator {command[0]} failed:\n{result.stderr.strip()}")
    return result.stdout


def provision(args: argparse.Namespace, local: Path, env: dict[str, str], stopping: threading.Event) -> threading.Event:
    """Runs the operator's database phases, and again every 2 s while they fail, as the controller
    requeues a failed pass: on a first install the api creates the source tables, so the first pass
    may find none. Returns an event set once a pass succeeded."""
    done = threading.Event()

    def attempt() -> bool:
        try:
            lines = operator(args, "provision", str(local), env=env).splitlines()
        except KubeletError as error:
            log(f"{error} (retrying in 2 s, as the controller requeues)")
            return False
        # NB: one line a statement (a CREATE TABLE's columns are in the operator's plan).
        for line in lines:
            if line.startswith("provision: "):
                log(line)
        done.set()
        return True

    if not attempt():
        def retry() -> None:
            while not stopping.wait(2):
                if attempt():
                    return

        threading.Thread(target=retry, daemon=True).start()
    return done


def parse_secrets(values: list[str]) -> dict[str, dict[str, str]]:
    secrets: dict[str, dict[str, str]] = {}
    for value in values:
        ref, sep, data = value.partition("=")
        name, slash, key = ref.partition("/")
        if not (sep and slash):
            raise SystemExit(f"--secret {value!r}: expected NAME/KEY=VALUE")
        secrets.setdefault(name, {})[key] = data
    return secrets


def database_env(pipeline: dict, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The Secret values the operator's database phases need, as `provision` reads them."""
    objects = Objects({}, secrets, [], [])
    ref = pipeline["spec"]["source"]["connectionSecretRef"]
    env = {"SOURCE_DSN": secret_value(objects, ref["name"], ref["key"])}
    credentials = pipeline["spec"]["clickhouse"].get("credentialsSecretRef")
    if credentials:
        env["CLICKHOUSE_USER"] = secret_value(objects, credentials["name"], credentials.get("usernameKey", "username"))
        env["CLICKHOUSE_PASSWORD"] = secret_value(objects, credentials["name"], credentials.get("passwordKey", "password"))
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", required=True, type=Path)
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "release"),
                        help="where the binaries docker/Dockerfile copies were built (default target/release)")
    parser.add_argument("--secret", action="append", default=[], metavar="NAME/KEY=VALUE")
    parser.add_argument("--port-forward", action="append", default=[], metavar="SERVICE=PORT")
    parser.add_argument("--logs", default=str(ROOT / ".services" / "kubelet" / "logs"))
    parser.add_argument("--work-dir", default=None, help="volumes and the local pipeline (default: under .services/kubelet)")
    parser.add_argument("--source-dsn", help="the value of the Secret the pipeline's connectionSecretRef names")
    parser.add_argument("--keep-running", action="store_true", help="after COMMAND, run until SIGINT/SIGTERM")
    parser.add_argument("--scrape-metrics", type=Path, metavar="DIR",
                        help="before stopping, save each container's /metrics (probe port) into DIR")
    parser.add_argument("--ready-timeout", type=float, default=120, metavar="SECONDS",
                        help="how long every container has to become ready (default 120)")
    parser.add_argument("--keep-slot", action="store_true", help="skip the finalizer's cleanup at the end")
    parser.add_argument("--run-jobs", action="store_true",
                        help="after COMMAND succeeds, run each Job and each CronJob's job template once, to "
                             "completion (each must exit 0), as the schedule or a request would")
    parser.add_argument("--job-timeout", type=float, default=300, metavar="SECONDS",
                        help="how long one Job may run (default 300)")
    parser.add_argument("--jobs-settle-seconds", type=float, default=15, metavar="SECONDS",
                        help="after the Jobs, wait this long before the pods are scraped and stopped (default 15)")
    parser.add_argument("--resolve-only", action="store_true",
                        help="resolve every manifest (env, volumes, mounted YAML, Services) and run nothing")
    parser.add_argument("command", nargs="*")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("kubelet: needs root (network and mount namespaces)")
    missing = [v for v in ("DATABASE_URL", "KAFKA_BROKERS", "CLICKHOUSE_URL") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"kubelet: {', '.join(missing)} not set: run eval \"$(scripts/services.sh env)\"")
    run_id = f"{int(time.time())}-{os.getpid()}"
    args.work_dir = args.work_dir or str(ROOT / ".services" / "kubelet" / run_id)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    Path(args.logs).mkdir(parents=True, exist_ok=True)
    for port_forward in args.port_forward:
        if "=" not in port_forward:
            raise SystemExit(f"--port-forward {port_forward!r}: expected SERVICE=PORT")

    local = Path(args.work_dir) / "pipeline.yaml"
    pipeline = local_pipeline(args.pipeline, local)
    secrets = parse_secrets(args.secret)
    if args.source_dsn:
        ref = pipeline["spec"]["source"]["connectionSecretRef"]
        secrets.setdefault(ref["name"], {})[ref["key"]] = args.source_dsn
    try:
        manifests = [d for d in yaml.safe_load_all(operator(args, "plan", "--manifests-only", str(local))) if d]
        objects = Objects(
            {m["metadata"]["name"]: m.get("data") or {} for m in manifests if m["kind"] == "ConfigMap"},
            secrets,
            [m for m in manifests if m["kind"] == "Deployment"],
            [m for m in manifests if m["kind"] == "Service"],
            [(m["metadata"]["name"], m["spec"]["template"]) for m in manifests if m["kind"] == "Job"]
            + [(m["metadata"]["name"], m["spec"]["jobTemplate"]["spec"]["template"])
               for m in manifests if m["kind"] == "CronJob"],
        )
        namespace = pipeline["metadata"].get("namespace", "default")
        check_services(objects)
        kubelet = Kubelet(args, objects, namespace)
        if args.resolve_only:
            templates = [(d["metadata"]["name"], d["spec"]["template"]) for d in objects.deployments] + objects.jobs
            for name, template in templates:
                pod_spec = template["spec"]
                kubelet.resolve_only(name, pod_spec, {v["name"]: v for v in pod_spec.get("volumes") or []})
            return 0
        db_env = database_env(pipeline, secrets)
    except KubeletError as error:
        log(f"error: {error}")
        return 1

    status = 0
    interrupted = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: interrupted.set())
    try:
        provisioned = provision(args, local, db_env, kubelet.stopping)
        kubelet.run_deployments()
        kubelet.wait_ready()
        if not provisioned.is_set():
            raise KubeletError("every pod is ready, but provisioning never succeeded")
        for port_forward in args.port_forward:
            service, _, port = port_forward.partition("=")
            kubelet.port_forward(service, int(port))
        if args.command:
            command = subprocess.Popen(args.command, env={**os.environ, "KUBELET_LOGS": args.logs})
            while command.poll() is None and not interrupted.is_set():
                time.sleep(0.2)
            if command.poll() is None:
                command.terminate()
            status = command.wait()
            if status == 0 and args.run_jobs:
                for name, template in objects.jobs:
                    kubelet.run_job(name, template, args.job_timeout)
                if objects.jobs:
                    # The pods' periodic reads (the sink's status gauges) see what the Jobs wrote.
                    time.sleep(args.jobs_settle_seconds)
            if status == 0 and args.keep_running and not interrupted.is_set():
                interrupted.wait()
        else:
            log("every pod is ready; stop with Ctrl-C")
            interrupted.wait()
    except KubeletError as error:
        log(f"error: {error}")
        status = 1
    finally:
        if args.scrape_metrics:
            try:
                kubelet.scrape_metrics(args.scrape_metrics)
            except OSError as error:
                log(f"error: scraping /metrics failed: {error}")
                status = status or 1
        failures = kubelet.failures() + kubelet.stop()
        for failure in failures:
            log(f"error: {failure}")
        if failures:
            status = status or 1
        if not args.keep_slot:
            try:
                log(operator(args, "deprovision", str(local), env=database_env(pipeline, secrets)).strip())
            except KubeletError as error:
                log(f"error: {error}")
                status = status or 1
        shutil.rmtree(args.work_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
