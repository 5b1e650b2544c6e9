"""A throwaway PostgreSQL server for tests: initdb into a fresh folder under /tmp, a server on
a free 127.0.0.1 port (its unix socket in that folder, trust auth, fsync off), stopped and
deleted at the end even when the test fails.

initdb and postgres refuse to run as root: as root they run as the ``postgres`` user that
Debian's package creates, and the folder is that user's (pytest's tmp_path is root-only).
Missing binaries are a failure that says to run ``make test`` (which installs them), never
a skip: a skipped storage test would hide the one check of the RDB path.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

SUPERUSER = "postgres"  # the cluster's superuser name (initdb -U), and the OS user when root


def server_bin_dir() -> Path:
    """The folder holding initdb / pg_ctl / postgres: from PATH, else Debian's newest
    /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted((Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
                "/usr/lib/postgresql/*/bin; run `make test`, which installs Debian's postgresql package",
                pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user() -> list[str]:
    """The command prefix that runs the server tools as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        pytest.fail(f"running as root and there is no '{SUPERUSER}' user to run the PostgreSQL server as "
                    "(initdb refuses root); run `make test`, which installs Debian's postgresql package",
                    pytrace=False)
    return ["runuser", "-u", SUPERUSER, "--"]


class Server:
    def __init__(self, bin_dir: Path, folder: Path, port: int):
        self.bin_dir, self.folder, self.port = bin_dir, folder, port
        self.data, self.log = folder / "data", folder / "server.log"

    def tool(self, name: str, *args: str, as_server_user: bool = True) -> None:
        cmd = (_as_server_user() if as_server_user else []) + [str(self.bin_dir / name), *args]
        # cwd: the server user may not be able to enter the test's working directory
        done = subprocess.run(cmd, cwd=self.folder, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.is_file() else ""
            raise RuntimeError(f"{name} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        self.tool("initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C",
                  "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -F"
        self.tool("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").is_file():
            self.tool("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.tool("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name, as_server_user=False)
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"


@contextmanager
def throwaway_server() -> Iterator[Server]:
    bin_dir = server_bin_dir()
    prefix = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="wb-pg-", dir="/tmp"))
    try:
        if prefix:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(folder, user.pw_uid, user.pw_gid)
        server = Server(bin_dir, folder, free_port())
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
