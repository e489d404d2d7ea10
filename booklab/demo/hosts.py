"""Docker hosts on this machine that share nothing but a network, for the demo of several hosts
(``make demo HOSTS=2``), the tests and the benchmarks.

Each host is a network namespace with an address of its own on one wire (a Linux bridge in a
namespace of its own, with no firewall) and, in :class:`DockerHost`, its own host name and its own
Docker Engine (own data root, exec root, socket and bridge). This machine's own namespace can be
plugged into the wire too, as the world outside. Making namespaces needs root.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker

from booklab.demo.processes import end_with_parent
from booklab.errors import DemoError

#: how long an engine may take to answer once started
ENGINE_START_TIMEOUT = 60
#: how long an engine may take to stop before it is killed
ENGINE_STOP_TIMEOUT = 60


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.200.0.0/13 that no route of this machine covers."""
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, check=True).stdout)
    taken = [ipaddress.ip_network(r["dst"]) for r in routes if r["dst"] != "default"]
    while True:
        subnet = ipaddress.ip_network(f"10.{200 + secrets.randbelow(8)}.{secrets.randbelow(256)}.0/24")
        if not any(subnet.overlaps(other) for other in taken):
            return subnet


@dataclass(frozen=True)
class Namespace:
    """A network namespace on the wire: ``name`` empty for this machine's own."""

    name: str
    address: str

    def wrap(self) -> tuple[str, ...]:
        """The command that runs another in this namespace."""
        return ("nsenter", f"--net=/run/netns/{self.name}", "--") if self.name else ()

    def connects(self, host: str, port: int, timeout: float = 2) -> str:
        """ "open" when a TCP connection from this namespace to ``host:port`` opens, else the error's name."""
        probe = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({host!r}, {port}), timeout={timeout}).close()\n"
            "    print('open')\n"
            "except OSError as e:\n"
            "    print(type(e).__name__)\n"
        )
        done = subprocess.run([*self.wrap(), "python3", "-c", probe], capture_output=True, text=True, check=True)
        return done.stdout.strip()


class Wire:
    """The network the hosts share: a bridge in a namespace of its own, and a veth to it from each host."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.subnet = free_subnet()
        self.netns = f"{tag}-wire"
        self.namespaces: list[str] = []
        ip("netns", "add", self.netns)
        ip("-n", self.netns, "link", "add", "wire", "type", "bridge")
        ip("-n", self.netns, "link", "set", "wire", "up")

    def plug(self, index: int, name: str = "") -> Namespace:
        """A namespace ``<tag>-<name>`` (this machine's own for no name) with the ``index``-th address of the wire."""
        address = str(self.subnet.network_address + index)
        netns = f"{self.tag}-{name}" if name else ""
        inside, outside = f"{self.tag}{index}", f"{self.tag}{index}w"  # at most 15 characters
        if netns:
            ip("netns", "add", netns)
            self.namespaces.append(netns)
        ip("link", "add", inside, "type", "veth", "peer", "name", outside, "netns", self.netns)
        on = ("-n", netns) if netns else ()
        if netns:
            ip("link", "set", inside, "netns", netns)
            ip(*on, "link", "set", "lo", "up")
        ip("-n", self.netns, "link", "set", outside, "master", "wire", "up")
        ip(*on, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", inside)
        ip(*on, "link", "set", inside, "up")
        return Namespace(netns, address)

    def remove(self) -> None:
        for netns in [*self.namespaces, self.netns]:  # their veths go with them
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True)


class DockerHost:
    """A Docker Engine of its own in ``namespace``, under the host name ``hostname``, its files in ``directory``."""

    def __init__(self, namespace: Namespace, hostname: str, directory: Path, insecure_registries: str) -> None:
        self.namespace = namespace
        self.hostname = hostname
        self.directory = directory
        self.socket = directory / "docker.sock"
        self.insecure_registries = insecure_registries
        self.proc: subprocess.Popen | None = None
        self.client: docker.DockerClient | None = None  # once the engine answers

    @property
    def address(self) -> str:
        return self.namespace.address

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def answers(self) -> bool:
        """Whether the engine answers its ping (asked by hand: a failed docker-py client leaves its socket open)."""
        try:
            with socket.socket(socket.AF_UNIX) as connection:
                connection.settimeout(5)
                connection.connect(str(self.socket))
                connection.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return connection.recv(1024).startswith(b"HTTP/1.0 200")
        except OSError:
            return False

    def start(self) -> None:
        """Start its dockerd (in a UTS namespace of its own, under its host name) and wait until it answers."""
        dockerd = [
            "dockerd",
            f"--host={self.docker_host}",
            f"--data-root={self.directory / 'data'}",
            f"--exec-root={self.directory / 'exec'}",
            f"--pidfile={self.directory / 'docker.pid'}",
            f"--insecure-registry={self.insecure_registries}",
        ]
        script = 'hostname "$0" && exec "$@"'
        with open(self.directory / "dockerd.log", "a") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--uts", "--", *self.namespace.wrap(), "sh", "-c", script, self.hostname, *dockerd],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in a terminal is for its starter, which stops it in order
                preexec_fn=end_with_parent,  # and ends with its starter however that ends
            )
        try:
            deadline = time.monotonic() + ENGINE_START_TIMEOUT
            while self.proc.poll() is None and not self.answers():
                if time.monotonic() > deadline:
                    self.proc.kill()
                time.sleep(0.1)
        except BaseException:  # a Ctrl-C while it starts: nothing else would stop it
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise
        if self.proc.poll() is not None:
            log = (self.directory / "dockerd.log").read_text(errors="replace")[-3000:]
            self.proc = None
            raise DemoError(f"The Docker Engine of {self.hostname} did not start; the end of its log:\n{log}")
        if self.client is None:
            self.client = docker.DockerClient(base_url=self.docker_host, timeout=120)

    def load(self, image: str) -> None:
        """Copy ``image`` from this machine's Docker Engine (``docker save | docker load``), as a host that built it
        or pulled it once has it."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["docker", "--host", self.docker_host, "load", "--quiet"], stdin=save.stdout, capture_output=True
        )
        save.stdout.close()
        if save.wait() or loaded.returncode:
            raise DemoError(f"Copying {image} to the Docker Engine of {self.hostname} failed: {loaded.stderr!r}")

    def kill(self) -> None:
        """Kill its dockerd at once (containerd goes with it; the containers' processes stay, as on a host
        whose engine crashed)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        """Remove every container and the engine with its files (started again first when it was killed after
        it had answered, so that it ends the containers it left)."""
        try:
            if self.proc is None and self.client is not None:
                self.start()
            if self.client is not None:
                for container in self.client.containers.list(all=True):
                    container.remove(force=True)
        finally:
            if self.proc is not None:
                self.proc.terminate()
                try:
                    self.proc.wait(ENGINE_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                self.proc = None
            if self.client is not None:
                self.client.close()
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
            for mount in reversed(mounts):  # dockerd leaves its data root mounted on itself
                if mount.startswith(f"{self.directory}/"):
                    subprocess.run(["umount", "--lazy", mount], capture_output=True)
            shutil.rmtree(self.directory, ignore_errors=True)
