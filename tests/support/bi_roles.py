"""Test helpers for ``autopicker bi-role``: running it, logging in as the role, checking its password.

Roles are cluster-wide, so every test role gets a unique name and is dropped afterwards; the servers the
tests use trust local connections, so the stored SCRAM verifier is checked against the password directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from ingest.db import Database
from tests.support.cli import run_cli


def unique_role() -> str:
    return f"bi_test_{uuid.uuid4().hex[:12]}"


def bi_role_cli(database: Database, *args: str, password: str | None) -> subprocess.CompletedProcess[str]:
    """``autopicker bi-role ...`` against ``database``, the password in AUTOPICKER_BI_PASSWORD when given."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": database.url, "COLUMNS": "200"}
    if password is not None:
        env["AUTOPICKER_BI_PASSWORD"] = password
    return run_cli("bi-role", *args, env=env)


@contextmanager
def connect_as(database: Database, role: str, password: str) -> Iterator[psycopg.Connection]:
    """A connection to ``database`` logged in as ``role`` with ``password``, in autocommit mode so that each
    refused statement stands alone."""
    with psycopg.connect(database.url, user=role, password=password, autocommit=True) as conn:
        yield conn


def stored_verifier(database: Database, role: str) -> str:
    with database.connect() as conn:
        return conn.execute("select rolpassword from pg_authid where rolname = %s", (role,)).fetchone()[0]  # type: ignore[index]


def scram_matches(verifier: str, password: str) -> bool:
    """Whether a ``SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`` verifier (RFC 5802, as PostgreSQL
    stores it) was made from ``password`` (ASCII, so SASLprep leaves it as it is)."""
    method, parameters, keys = verifier.split("$")
    assert method == "SCRAM-SHA-256", method
    iterations, salt = parameters.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def drop_role(database: Database, role: str) -> None:
    """Drop ``role`` after removing what it holds in ``database`` (its grants, default privileges)."""
    with database.connect(autocommit=True) as conn:
        if conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
            conn.execute(f'drop owned by "{role}"')
            conn.execute(f'drop role "{role}"')
