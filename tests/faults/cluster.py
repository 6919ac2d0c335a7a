"""A private PostgreSQL cluster that a fault test may stop and start at will.

The machine's PostgreSQL (127.0.0.1:5432) is shared by every test running in parallel, so
a test that takes the database down needs a cluster of its own: ``initdb`` into a fresh
directory, ``pg_ctl`` on a free loopback port with its socket in that directory, never
touching the machine's cluster. ``initdb`` and ``postgres`` refuse to run as root: as root
they run as the ``postgres`` user (``runuser``), in a directory that user owns.

Where the binaries are missing the test is skipped with the reason, except under
``CI=true``, where it fails (the rule tests/conftest.py applies to PostgreSQL).

The methods block (they wait for ``pg_ctl``): call them from a synchronous fixture, or
through ``asyncio.to_thread`` inside a test's event loop.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from tests.conftest import IN_CI
from tests.integration.channels_support import free_port

__all__ = ["PostgresCluster", "find_bindir", "private_cluster"]

StopMode = Literal["smart", "fast", "immediate"]
#: pg_ctl waits this long for a start or stop (the machine may be busy).
PG_CTL_WAIT_SECONDS = 120
_ROOT_RUNS_AS = "postgres"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder holding initdb and pg_ctl."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    if not candidates:
        on_path = shutil.which("pg_ctl")
        if on_path and shutil.which("initdb"):
            return Path(on_path).parent
        return None
    return max(candidates, key=version)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a private PostgreSQL cluster is required)")
    pytest.skip(reason)


class PostgresCluster:
    """One ``initdb``-made cluster in ``root`` listening on 127.0.0.1:``port``."""

    def __init__(self, root: Path, port: int, bindir: Path, run_as: str | None) -> None:
        self.root = root
        self.port = port
        self.bindir = bindir
        self.run_as = run_as  # a user name when we are root, else None (ourselves)
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the cluster's ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PG_CTL_WAIT_SECONDS + 30
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}\n{self.server_log()}"
            )

    def server_log(self) -> str:
        """What the server wrote (for a failure's message)."""
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def init(self) -> None:
        """Create the cluster (trust authentication, no fsync: it is thrown away)."""
        self.sockets.mkdir()
        if self.run_as is not None:
            user = pwd.getpwnam(self.run_as)
            for path in (self.root, self.sockets):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "--no-sync",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c synchronous_commit=off -c max_connections=100"
        )
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            str(PG_CTL_WAIT_SECONDS),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
        )

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server and wait until it is gone. ``fast`` ends the sessions (their
        transactions roll back); ``immediate`` is a crash (recovery at the next start)."""
        wait = str(PG_CTL_WAIT_SECONDS)
        self._run("pg_ctl", "stop", "-w", "-t", wait, "-D", str(self.data), "-m", mode)

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    def running(self) -> bool:
        """Whether the postmaster is up (``pg_ctl status``)."""
        try:
            self._run("pg_ctl", "status", "-D", str(self.data))
        except RuntimeError:
            return False
        return True


@contextlib.contextmanager
def private_cluster() -> Iterator[PostgresCluster]:
    """A started private cluster, stopped (``immediate``) and deleted afterwards, whatever
    the test did. Skips (fails under CI=true) when PostgreSQL's binaries are missing."""
    bindir = find_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert bindir is not None
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_ROOT_RUNS_AS)
        except KeyError:
            _unavailable(f"running as root and there is no {_ROOT_RUNS_AS!r} user for PostgreSQL")
        run_as = _ROOT_RUNS_AS
    # Not under pytest's tmp_path: its folders are private to us, and the server may run as
    # another user.
    root = Path(tempfile.mkdtemp(prefix="selfcare-pg-"))
    cluster = PostgresCluster(root, free_port(), bindir, run_as)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
