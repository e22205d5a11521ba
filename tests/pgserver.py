"""A throwaway PostgreSQL cluster for the tests: initdb into a temp folder, start on a free port, stop.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.ports import free_port
from tests.tools import need


class PostgresServer:
    def __init__(self) -> None:
        self.initdb, self.pg_ctl = str(need("initdb")), str(need("pg_ctl"))
        self.folder = Path(tempfile.mkdtemp(prefix="pgtest."))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")
            shutil.chown(self.folder, "postgres")
            self.as_user = [str(need("runuser")), "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> PostgresServer:
        data = self.folder / "data"
        self._run(self.initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")
        self._run(self.pg_ctl, "-D", str(data), "-l", str(self.folder / "log"), "-w", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)
