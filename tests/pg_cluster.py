"""A private PostgreSQL cluster for tests that restart the server (the shared one on 5432 is
never touched): Debian's binaries, run as the ``postgres`` user, a temporary data directory,
a free port on 127.0.0.1, trust authentication.

    with PrivateCluster.started() as cluster:
        cluster.url            # postgresql://postgres@127.0.0.1:<port>/postgres
        cluster.restart("immediate")

:func:`unavailable` says why a cluster cannot run here (``None`` when it can).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

BIN = Path(os.environ.get("PW_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "postgres"


def unavailable() -> str | None:
    """Why a private cluster cannot start here, or ``None``."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (BIN / tool).exists():
            return f"{BIN / tool} is missing (install Debian's postgresql-15)"
    if os.geteuid() != 0:
        return "not root: the cluster runs as the postgres user via runuser"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return f"there is no {USER!r} user to run the cluster"
    if shutil.which("runuser") is None:
        return "runuser is missing"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateCluster:
    """One initdb'ed cluster in a temporary directory owned by ``postgres``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pw_pg_"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        entry = pwd.getpwnam(USER)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(
            ["runuser", "-u", USER, "--", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                f"server log:\n{log[-3000:]}"
            )

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
            "-w", "-t", "60", *args,
        )  # fmt: skip

    def init(self) -> None:
        self._run(
            str(BIN / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m fast`` (sessions terminated, transactions rolled back) or
        ``-m immediate`` (no shutdown: crash recovery from the WAL on start)."""
        self._pg_ctl("restart", "-m", mode)

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "immediate")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[PrivateCluster]:
        """A running cluster, stopped and deleted afterwards."""
        cluster = cls()
        try:
            cluster.init()
            cluster.start()
            yield cluster
        finally:
            with suppress(RuntimeError, subprocess.TimeoutExpired):  # never started, or gone
                cluster.stop()
            cluster.remove()
