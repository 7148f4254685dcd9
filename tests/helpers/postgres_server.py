"""A throwaway real PostgreSQL server for tests, from Debian's ``postgresql`` package.

Shared Optuna studies are only worth testing against the database they run on in production, so this starts a
private server (its own data dir, TCP port and unix socket dir) rather than faking one, and skips where it cannot.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # the superuser initdb creates, and the system user Debian's package adds
DATABASE = "sftlab_test"
START_TIMEOUT_S = 30.0


def _version(bin_dir: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>/bin``, so 15 beats 9.6."""
    return tuple(int(part) for part in bin_dir.parent.name.split(".") if part.isdigit())


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: PATH first, else Debian's newest versioned layout.

    Debian puts the server binaries only under ``/usr/lib/postgresql/<version>/bin``, not on PATH; a symlink on PATH
    is resolved so that the binaries of one install are used together.
    """
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for bin_dir in candidates:
        if (bin_dir / "initdb").is_file() and (bin_dir / "postgres").is_file():
            return bin_dir
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(text: str, lines: int = 3) -> str:
    """The last few lines of a log, on one line, for a skip reason."""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(no output)"


def _server_owner() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root (initdb and postgres refuse root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no unprivileged '{SERVER_USER}' user to run PostgreSQL as")


def _stop(server: subprocess.Popen) -> None:
    """Fast shutdown (SIGINT), which also drops the clients' open connections; SIGKILL only if that hangs."""
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def postgres_server(tmp_dir: Path) -> Iterator[str]:
    """Run a private PostgreSQL server and yield ``postgresql+psycopg://postgres@127.0.0.1:<port>/sftlab_test``.

    The server is started directly (not through ``pg_ctl``) so that it is our child: it is stopped, and its files
    removed, on exit whatever the tests did. As root, its files go in a fresh system temp dir owned by the ``postgres``
    user, because pytest's tmp dirs are private to root.
    """
    psycopg = pytest.importorskip("psycopg", reason="psycopg (v3) is needed to reach the PostgreSQL test server")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not found (install Debian's postgresql package)")
    owner = _server_owner()
    run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
    work = Path(tempfile.mkdtemp(prefix="postgres-", dir=None if owner else tmp_dir))
    server = None
    try:
        if owner:
            os.chown(work, owner.pw_uid, owner.pw_gid)
        data, log = work / "data", work / "postgres.log"
        initdb_args = ["-D", data, "-U", SERVER_USER, "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"]
        initdb = subprocess.run(
            [bin_dir / "initdb", *initdb_args],
            cwd=work,
            capture_output=True,
            text=True,
            **run_as,
        )
        if initdb.returncode != 0:
            pytest.skip(f"PostgreSQL initdb failed: {_tail(initdb.stdout + initdb.stderr)}")

        port = _free_port()
        with log.open("w") as log_file:
            server = subprocess.Popen(
                [bin_dir / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", work, "-F"],
                cwd=work,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                **run_as,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, user=SERVER_USER, dbname="postgres", autocommit=True, connect_timeout=2
                ) as conn:
                    conn.execute(f"CREATE DATABASE {DATABASE}")
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"PostgreSQL server did not start: {_tail(log.read_text())}")
                time.sleep(0.2)
        yield f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if server is not None:
            _stop(server)
        shutil.rmtree(work, ignore_errors=True)
