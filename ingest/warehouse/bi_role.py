"""A least-privileged PostgreSQL login for BI tools: it reads the views in schema ``analytics``, nothing else.

``autopicker bi-role NAME`` creates the role (or, when it exists, sets its new password) and grants it
CONNECT on the warehouse database, USAGE on schema ``analytics`` and SELECT on every relation there. A view
runs with its owner's privileges, so reading the views needs no access to the staging, intermediate or raw
schemas beneath them; the raw tables, which may hold prompts, stay out of reach.

The views are dropped and recreated by every ``dbt build``. Two things keep the grant on the new ones:
default privileges of the views' owners in schema ``analytics`` (set here: any relation they create there
later is readable by the role), and the dbt ``grants`` config of the marts (var ``bi_roles``, default
``autopicker_bi``), which also holds when dbt runs as another PostgreSQL user.

The password comes from ``AUTOPICKER_BI_PASSWORD`` and never reaches the server in clear: it is hashed on
the client (libpq's PQencryptPasswordConn, the server's ``password_encryption`` method, as psql's
``\\password`` does), so not even the server log of a failed statement can hold it. It is never printed.

Writes are denied by construction (no INSERT/UPDATE/DELETE/TRUNCATE grant, no CREATE on any schema or on
the database, no EXECUTE on the large-object writers, which the database grants PUBLIC by default), every
session of the role starts read-only, and all of it is checked afterwards: the command fails, changing
nothing, when the role could read or write anything beyond ``analytics`` through older grants or role
memberships. What a session that turns read-only off can still do is said in docs/bi-access.md.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from autopicker.errors import UsageError, UserError
from ingest.db import Database

logger = logging.getLogger(__name__)

SCHEMA = "analytics"
PASSWORD_ENV = "AUTOPICKER_BI_PASSWORD"
DEFAULT_ROLE = "autopicker_bi"

# dbt writes grantees unquoted (`grant select on ... to autopicker_bi`), so a name that needs quoting would
# be granted under another name; PostgreSQL reserves the pg_ prefix and keeps 63 bytes of a name.
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

#: The functions that create, change or delete large objects (server-side lo_import/lo_export are for
#: superusers only already).
LARGE_OBJECT_WRITERS = (
    "pg_catalog.lo_creat(integer)",
    "pg_catalog.lo_create(oid)",
    "pg_catalog.lo_from_bytea(oid, bytea)",
    "pg_catalog.lo_put(oid, bigint, bytea)",
    "pg_catalog.lowrite(integer, bytea)",
    "pg_catalog.lo_truncate(integer, integer)",
    "pg_catalog.lo_truncate64(integer, bigint)",
    "pg_catalog.lo_unlink(oid)",
)

# Serialises two runs of the command on one database (CREATE ROLE would race).
_LOCK_KEY = 0x61757470_62690001


@dataclass(frozen=True)
class BiRole:
    """What the command did."""

    name: str
    created: bool
    database: str
    views: int
    #: every role may create tables in schema public on this server (PostgreSQL before 15 grants PUBLIC that)
    public_create: bool


def password_from_env() -> str:
    """The BI role's password from ``AUTOPICKER_BI_PASSWORD``; a usage error when unset or blank."""
    password = os.environ.get(PASSWORD_ENV, "")
    if not password.strip():
        raise UsageError(f"Set {PASSWORD_ENV} to the password the BI role should log in with.")
    return password


def check_role_name(name: str) -> str:
    """``name`` when it is a plain lowercase role name, else a usage error."""
    if not _ROLE_NAME.fullmatch(name) or name.startswith("pg_"):
        raise UsageError(
            f"Role name {name!r} must be 1 to 63 lowercase letters, digits or underscores, start with a "
            "letter or underscore, and not start with pg_."
        )
    return name


def ensure_bi_role(database: Database, name: str, password: str) -> BiRole:
    """Create or update the login role ``name`` so that it reads every view in schema analytics, and only
    that; one transaction, so a refusal leaves everything as it was."""
    check_role_name(name)
    with database.connect() as conn:
        try:
            result = _ensure(conn, name, password)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise UserError(f"The warehouse user may not set up role {name}: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise UserError(f"Could not set up role {name}: {_first_line(exc)}") from None
        conn.commit()
    logger.info("BI role %s %s in %s", name, "created" if result.created else "updated", result.database)
    return result


def _ensure(conn: psycopg.Connection, name: str, password: str) -> BiRole:
    conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    current_user, dbname = conn.execute("select current_user, current_database()").fetchone()  # type: ignore[misc]
    if name == current_user:
        raise UserError(f"Role {name} is the warehouse user itself; give the BI role a name of its own.")
    if not conn.execute("select 1 from pg_namespace where nspname = %s", (SCHEMA,)).fetchone():
        raise UserError(
            f"Schema {SCHEMA} does not exist yet in database {dbname}: run `autopicker build` first."
        )
    existing = conn.execute(
        "select rolsuper or rolcreatedb or rolcreaterole or rolreplication or rolbypassrls"
        " from pg_roles where rolname = %s",
        (name,),
    ).fetchone()
    if existing and existing[0]:
        raise UserError(
            f"Role {name} exists with administrative attributes (superuser, createdb, createrole, replication"
            " or bypassrls); pick another name for the BI role."
        )
    role = sql.Identifier(name)
    schema = sql.Identifier(SCHEMA)
    # Hashed here: the statement carries a SCRAM (or MD5) verifier, never the password itself.
    verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), None).decode()
    attributes = sql.SQL(
        "login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit password {}"
    ).format(sql.Literal(verifier))
    verb = "alter" if existing else "create"
    conn.execute(sql.SQL(verb + " role {} with {}").format(role, attributes))

    owners = [
        row[0]
        for row in conn.execute(
            "select distinct pg_get_userbyid(c.relowner) from pg_class c"
            " join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s",
            (SCHEMA,),
        ).fetchall()
    ]
    statements = [
        sql.SQL("grant connect on database {} to {}").format(sql.Identifier(dbname), role),
        sql.SQL("revoke create on database {} from {}").format(sql.Identifier(dbname), role),
        sql.SQL("grant usage on schema {} to {}").format(schema, role),
        sql.SQL("revoke create on schema {} from {}").format(schema, role),
        sql.SQL("revoke create on schema public from {}").format(role),
        sql.SQL("revoke all on all tables in schema {} from {}").format(schema, role),
        sql.SQL("grant select on all tables in schema {} to {}").format(schema, role),
    ]
    # Views dbt creates later belong to whoever runs dbt: the owners of today's views and this user.
    for owner in sorted({*owners, current_user}):
        statements.append(
            sql.SQL("alter default privileges for role {} in schema {} grant select on tables to {}").format(
                sql.Identifier(owner), schema, role
            )
        )
    # Large objects are written by functions PUBLIC may execute, not by table privileges: in this database
    # only roles granted them keep them (the warehouse user does). Every session of the role starts read
    # only besides, which also stops temporary tables and writes in other databases of the server (a
    # session can turn that off; docs/bi-access.md says what remains).
    superuser = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()[0]  # type: ignore[index]
    for function in LARGE_OBJECT_WRITERS:
        signature = sql.SQL(function)
        statements.append(sql.SQL("revoke execute on function {} from public").format(signature))
        if not superuser:
            statements.append(
                sql.SQL("grant execute on function {} to {}").format(signature, sql.Identifier(current_user))
            )
    statements.append(sql.SQL("alter role {} set default_transaction_read_only = on").format(role))
    for statement in statements:
        conn.execute(statement)

    _refuse_wider_access(conn, name, dbname)
    views = conn.execute(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = %s and c.relkind in ('v', 'm', 'r', 'p')",
        (SCHEMA,),
    ).fetchone()[0]  # type: ignore[index]
    public_create = conn.execute(
        "select exists (select 1 from pg_namespace where nspname = 'public')"
        " and has_schema_privilege(%s, 'public', 'CREATE')",
        (name,),
    ).fetchone()[0]  # type: ignore[index]
    return BiRole(name, existing is None, dbname, views, bool(public_create))


def _refuse_wider_access(conn: psycopg.Connection, name: str, dbname: str) -> None:
    """Fail when the role, through older grants or memberships, can do more than read analytics."""
    found = [
        row[0]
        for row in conn.execute(
            """
            select format('%%s %%s.%%s',
                case when has_table_privilege(%(role)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                    then 'write' else 'read' end,
                n.nspname, c.relname)
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'v', 'm', 'p', 'f')
                and n.nspname not in ('pg_catalog', 'information_schema')
                and n.nspname not like 'pg\\_%%'
                and has_schema_privilege(%(role)s, n.oid, 'USAGE')
                and (
                    (n.nspname <> %(schema)s and has_table_privilege(%(role)s, c.oid, 'SELECT'))
                    or has_table_privilege(%(role)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                )
            union all
            select 'create in schema ' || nspname
            from pg_namespace
            where nspname not like 'pg\\_%%' and nspname not in ('information_schema', 'public')
                and has_schema_privilege(%(role)s, oid, 'CREATE')
            union all
            select 'create schemas in database ' || %(db)s
            where has_database_privilege(%(role)s, %(db)s, 'CREATE')
            union all
            select 'write large objects with ' || f
            from unnest(%(lo)s::text[]) as f
            where has_function_privilege(%(role)s, f, 'EXECUTE')
            order by 1
            """,
            {"role": name, "schema": SCHEMA, "db": dbname, "lo": list(LARGE_OBJECT_WRITERS)},
        ).fetchall()
    ]
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise UserError(
            f"Role {name} could also {shown} (older grants or role memberships); revoke those first, since"
            f" the BI role must only read schema {SCHEMA}."
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
