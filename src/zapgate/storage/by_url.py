"""A :class:`~.database.Database` chosen by URL, with any set of migrations (the database layer only: the
gateway's own schema and :class:`~.store.Storage` are in :func:`zapgate.storage.open_database`).

==================  ===========================================================================
``sqlite:///path``  SQLite (also a plain file path)
``postgresql://…``  PostgreSQL; several sets of migrations share one database, each versioned in its own table
==================  ===========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .database import Database, format_migrations
from .sqlite import SqliteDatabase

__all__ = ["database_for", "is_postgres_url", "redact_url"]


def is_postgres_url(url: str) -> bool:
    return url.partition("://")[0] in ("postgresql", "postgres")


def database_for(
    url: str | Path,
    *,
    migrations: Sequence[str],
    name: str,
    synchronous: str = "full",
    version_table: str = "zapgate_schema",
    lock_hold_limit_s: float | None = None,
) -> Database:
    """A database for ``url`` with ``migrations`` (type placeholders not yet filled in), versioned in
    ``version_table`` on PostgreSQL. ``lock_hold_limit_s`` bounds how long a write transaction may sit idle on
    PostgreSQL (see :class:`~.postgres.PostgresDatabase`). Nothing is opened yet."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme == "sqlite":
        path = text
        if sep:
            # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy spells them
            path = rest[1:] if rest.startswith("/") else rest
            if not path:
                raise ValueError("a sqlite URL needs a path: sqlite:///zapgate-data/zapgate.db")
        scripts = format_migrations(migrations, "sqlite")
        return SqliteDatabase(Path(path), synchronous=synchronous, migrations=scripts, name=name)
    if is_postgres_url(text):
        from .postgres import PostgresDatabase

        scripts = format_migrations(migrations, "postgresql")
        return PostgresDatabase(
            text, migrations=scripts, name=name, version_table=version_table, lock_hold_limit_s=lock_hold_limit_s
        )
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
