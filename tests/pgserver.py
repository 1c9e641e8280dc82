"""A real, throwaway PostgreSQL server for the tests (and benchmarks): Debian's packages,
one cluster per test run, on a Unix socket and a loopback port, fsync off.

initdb refuses to run as root, so when the tests run as root (CI does) the cluster is made
and started as the `postgres` user, which Debian's package creates; its folder is handed to
that user. Nothing is written outside the folder given."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path


def _bin(name: str) -> str:
    """initdb and pg_ctl: Debian keeps them out of PATH, under /usr/lib/postgresql/N/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package "
                           "(scripts/setup.sh does)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`url` is a SQLAlchemy URL for the database `preserve` (user `postgres`, trust)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.port = _free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
            os.chmod(self.folder, 0o755)
            for parent in self.folder.parents:  # the postgres user must reach its folder
                if parent.stat().st_mode & 0o001 == 0:
                    os.chmod(parent, parent.stat().st_mode | 0o001)
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8")
        for attempt in range(3):  # the free port may be taken before the server binds it
            options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                       "-c max_connections=100")
            try:
                self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                          str(self.folder / "server.log"), "-w", "-t", "60", "start")
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                self.port = _free_port()
        self._run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "preserve")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/preserve"

    def new_database(self, name: str) -> str:
        """A fresh, empty database on this server; its URL."""
        self._run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  name)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, *command: str) -> None:
        if self._as_postgres:
            command = ("runuser", "-u", "postgres", "--", *command)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                                cwd=self.folder)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}")

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "30",
                      "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
