"""The cluster in processes: what the rendered chart runs, started here as processes.

Every Hearth process takes its command and environment from the rendered Deployment or
Job (not from a second copy in the tests), resolved as the kubelet resolves them:
literal values, `secretKeyRef`s read from the rendered Secrets, then `$(VAR)` references
to variables defined before. What a cluster provides and this machine does not is mapped,
each in one place here:

- a Service's DNS name and port, in env values and arguments → 127.0.0.1 and the port its
  one process listens on;
- `0.0.0.0` → 127.0.0.1 (nothing here listens beyond loopback), a container port → a
  free port (two web replicas on one machine);
- a volume's mount path → a folder: one per claim (the uploads claim is shared by web and
  worker, as an RWX volume is), one per pod for an emptyDir;
- the bundled PostgreSQL's URL → the test suite's embedded PostgreSQL (a Unix socket);
- the bundled Redis → `redis-server` started with the rendered container's own arguments;
- the Ingress → nginx (Debian's) with the directives its annotations ask of ingress-nginx.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests._server import free_port

HEARTH = [sys.executable, "-m", "hearth"]
_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def secret_values(objects: list[dict]) -> dict[tuple[str, str], str]:
    """(secret name, key) → value, from the rendered Secrets' data and stringData."""
    values: dict[tuple[str, str], str] = {}
    for name, secret in by_kind(objects, "Secret").items():
        for key, value in (secret.get("data") or {}).items():
            values[(name, key)] = base64.b64decode(value).decode()
        for key, value in (secret.get("stringData") or {}).items():
            values[(name, key)] = value
    return values


def expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' dependent variables: `$(VAR)` becomes the value of a variable defined
    before it, `$$` a literal `$`; a reference to an undefined variable stays as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return defined.get(name, match.group(0))

    return _REF.sub(one, value)


def container_env(container: dict, secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
    return env


@dataclass
class Pod:
    """One process of a rendered workload, with what it was given."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int | None = None  # where its main container port listens here

    def start(self) -> None:
        with self.log.open("ab") as out:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [*HEARTH, *self.args],
                env={**_clean_environment(), **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str = "/readyz", timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready in {timeout} s:\n{self.tail()}")

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}


@dataclass
class Cluster:
    """The rendered chart's processes, mapped onto this machine (see the module)."""

    objects: list[dict]
    database_url: str
    root: Path
    namespace: str = "hearth"
    pods: dict[str, list[Pod]] = field(default_factory=dict)
    services: dict[tuple[str, int], int] = field(default_factory=dict)  # (svc, port) → here
    _claims: dict[str, Path] = field(default_factory=dict)
    _others: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ingress_port: int | None = None

    # --- mapping --------------------------------------------------------------------------

    def service_port(self, service: str, port: int) -> int:
        """The local port for a Service's port (allocated on first use)."""
        return self.services.setdefault((service, port), free_port())

    def _rewrite(self, value: str) -> str:
        for service in by_kind(self.objects, "Service").values():
            name = service["metadata"]["name"]
            for port in service["spec"]["ports"]:
                here = self.service_port(name, port["port"])
                ns = re.escape(self.namespace)
                hosts = rf"{re.escape(name)}(?:\.{ns}(?:\.svc(?:\.cluster\.local)?)?)?"
                value = re.sub(rf"(?<![\w.-]){hosts}:{port['port']}\b", f"127.0.0.1:{here}", value)
        return value

    def _folder(self, pod: str, volume: dict) -> Path:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            return self._claims.setdefault(claim, _mkdir(self.root / "claims" / claim))
        return _mkdir(self.root / "pods" / pod / volume["name"])

    def pod(
        self, workload: str, replica: int = 0, *, port: str | None = None, one_off: bool = False
    ) -> Pod:
        """A process for one replica of the rendered Deployment, StatefulSet or Job named
        `workload` (its first container); `port` names the container port to serve.
        `one_off`: a command run in that pod's environment (`kubectl exec`), not a replica."""
        obj = next(
            o
            for o in self.objects
            if o["kind"] in ("Deployment", "StatefulSet", "Job")
            and o["metadata"]["name"] == workload
        )
        spec = obj["spec"]["template"]["spec"]
        container = spec["containers"][0]
        name = f"{workload}-{replica}"
        env = container_env(container, secret_values(self.objects))
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = {
            m["mountPath"]: self._folder(name, volumes[m["name"]])
            for m in container.get("volumeMounts", [])
        }
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        here = free_port() if port else None
        local_ports = {str(number): str(free_port()) for number in ports.values()}
        if port:
            local_ports[str(ports[port])] = str(here)
        for key, value in list(env.items()):
            value = self._rewrite(value)
            for path, folder in mounts.items():
                if value == path or value.startswith(path + "/"):
                    value = str(folder) + value[len(path) :]
            env[key] = value
        env["HEARTH_HOST"] = "127.0.0.1"  # the image's 0.0.0.0, kept to loopback here
        if "HEARTH_PORT" in env:
            env["HEARTH_PORT"] = local_ports[env["HEARTH_PORT"]]
        if "HEARTH_DATABASE_URL" in env:
            env["HEARTH_DATABASE_URL"] = self.database_url
        args = [
            local_ports.get(a, a) if i and container["args"][i - 1].endswith("-port") else a
            for i, a in enumerate(container.get("args", []))
        ]
        args = [self._rewrite(a) for a in args]  # a benchmark's --url names a Service
        env.setdefault("HEARTH_MODELS_DIR", str(_mkdir(self.root / "models")))  # the image's
        created = Pod(name, args, env, self.root / f"{name}.log", port=here)
        if not one_off:
            self.pods.setdefault(workload, []).append(created)
        return created

    def route(self, workload: str, service: str, service_port: int) -> None:
        """Send the Service's port to this workload's pods (one pod: its own port)."""
        [only] = self.pods[workload]
        assert only.port is not None
        self.services[(service, service_port)] = only.port

    # --- what the chart runs besides Hearth ---------------------------------------------

    def start_redis(self, workload: str, service: str) -> None:
        """redis-server with the rendered container's arguments, on the Service's port."""
        obj = by_kind(self.objects, "Deployment")[workload]
        container = obj["spec"]["template"]["spec"]["containers"][0]
        env = container_env(container, secret_values(self.objects))
        args = [expand(a, env) for a in container.get("args", [])]
        port = self.service_port(service, container["ports"][0]["containerPort"])
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        with (self.root / "redis.log").open("ab") as out:
            proc = subprocess.Popen(
                [redis, "--port", str(port), "--bind", "127.0.0.1", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._others.append(proc)
        password = args[args.index("--requirepass") + 1] if "--requirepass" in args else None
        for _ in range(100):
            probe = ["redis-cli", "-p", str(port), *(["-a", password] if password else []), "ping"]
            if subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def start_ingress(self, ingress: str) -> str:
        """nginx in front of the Ingress's backends, with what its annotations ask."""
        obj = by_kind(self.objects, "Ingress")[ingress]
        notes = obj["metadata"].get("annotations", {})
        prefix = "nginx.ingress.kubernetes.io/"
        rule = obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        backends = [p for p in self.pods_behind(rule["name"])]
        self.ingress_port = free_port()
        folder = _mkdir(self.root / "nginx")
        servers = "\n".join(f"    server 127.0.0.1:{p.port};" for p in backends)
        conf = f"""
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {folder}/access.log;
  client_body_temp_path {folder}/body;
  proxy_temp_path {folder}/proxy;
  upstream web {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{self.ingress_port};
    client_max_body_size {notes.get(prefix + "proxy-body-size", "1m")};
    location / {{
      proxy_pass http://web;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_buffering {notes.get(prefix + "proxy-buffering", "on")};
      proxy_request_buffering {notes.get(prefix + "proxy-request-buffering", "on")};
      proxy_read_timeout {notes.get(prefix + "proxy-read-timeout", "60")}s;
      proxy_send_timeout {notes.get(prefix + "proxy-send-timeout", "60")}s;
    }}
  }}
}}
"""
        (folder / "nginx.conf").write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        command = [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf")]
        with (folder / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                [*command, "-g", "daemon off; user root;"], stdout=out, stderr=subprocess.STDOUT
            )
        self._others.append(proc)
        url = f"http://127.0.0.1:{self.ingress_port}"
        for _ in range(100):
            try:
                httpx.get(url + "/healthz", timeout=1)
                return url
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not start: {(folder / 'error.log').read_text()}")

    def pods_behind(self, service: str) -> list[Pod]:
        """The pods a Service selects: the workloads whose pod labels match its selector."""
        selector = by_kind(self.objects, "Service")[service]["spec"]["selector"]
        found = []
        for workload, pods in self.pods.items():
            obj = next(
                o
                for o in self.objects
                if o["metadata"]["name"] == workload and "template" in o.get("spec", {})
            )
            labels = obj["spec"]["template"]["metadata"].get("labels", {})
            if all(labels.get(k) == v for k, v in selector.items()):
                found += pods
        return found

    def stop(self) -> None:
        for pods in self.pods.values():
            for pod in pods:
                pod.stop()
        for proc in self._others:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def run(pod: Pod, timeout: float = 120, stdin: str | None = None) -> str:
    """Run a one-off process (a Job's, or a command in a pod's environment) to its end."""
    done = subprocess.run(
        [*HEARTH, *pod.args],
        env={**_clean_environment(), **pod.env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{pod.name} {pod.args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout
