"""The services this machine kind runs for tests: PostgreSQL and Redis on 127.0.0.1.

Tests that need one ask for it here: when it is not running they skip with the reason, except under
``CI=true``, where a missing service fails the test (CI must run them).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator

import pytest

__all__ = ["IN_CI", "POSTGRES_URL", "REDIS_URL", "postgres_schema", "require"]

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("ZAPGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ZAPGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(service: str) -> None:
    """Skip (or, under CI, fail) the calling test when ``service`` (postgres or redis) is not running."""
    port = {"postgres": 5432, "redis": 6379}[service]
    if _reachable("127.0.0.1", port):
        return
    message = f"{service} is not running on 127.0.0.1:{port}"
    if IN_CI:
        pytest.fail(f"{message}, and CI=true requires it")
    pytest.skip(message)


def postgres_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test; yields a URL whose connections use it, drops it afterwards."""
    require("postgres")
    import psycopg

    schema = f"zt_{secrets.token_hex(6)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
