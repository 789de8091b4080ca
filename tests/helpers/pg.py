"""A throwaway PostgreSQL cluster for the test suite: initdb in a temp dir, as `postgres`, loopback only."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def pg_bin() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """Start with `start()`, stop with `stop()`; `url(db)` gives a SQLAlchemy URL on loopback."""

    def __init__(self) -> None:
        binaries = pg_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bin = binaries
        self.base = Path(tempfile.mkdtemp(prefix="mgreview-pg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as_postgres, *args], check=True, capture_output=True, text=True)

    def start(self) -> None:
        """initdb and start the server on 127.0.0.1 only, with its socket in the temp dir."""
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start"
        )

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL for a database of this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Stop the server and remove its files."""
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
