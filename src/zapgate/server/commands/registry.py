"""The table from command structs to handlers, and the one entry point that runs a command.

:func:`run_command` checks the caller's scope and, for a token limited to some sessions, the session a command
names; it writes the **audit log** entry of every command that needs the ``tenant`` or ``admin`` scope and changes
something, and of every command refused as ``forbidden`` (``docs/security.md``, "Audit log").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from ...auth import Caller
from ...errors import CommandUnavailable, Forbidden, InvalidRequest, ZapgateError
from ...gateway import Gateway
from ...protocol import COMMANDS, Command, CommandSpec, Scope, SessionListResult, encode

__all__ = ["AUDITED_SCOPES", "HANDLERS", "Handler", "audited", "execute", "handles", "run_command"]

log = logging.getLogger("zapgate.server")

AUDITED_SCOPES = frozenset({Scope.TENANT, Scope.ADMIN})
"""Commands needing these scopes that change something (their REST route is not a ``GET``) change what a tenant
has (sessions, tokens, tenants, settings): each is audited. ``send`` and ``read`` commands are not (the outbox and
the event log already record every message), nor are reads (``tenant.list``, ``token.list``, ``audit.list``)."""


DETAIL_MAX_CHARS = 500
"""An audit entry keeps at most this much of an admin command's fields."""


def audited(spec: CommandSpec) -> bool:
    """Is a run of this command written to the audit log (whatever its outcome)?"""
    return spec.scope in AUDITED_SCOPES and (spec.http is None or spec.http[0] != "GET")


Handler = Callable[[Gateway, Caller, Any], Awaitable[Any]]
HANDLERS: dict[type[Command], Handler] = {}

H = TypeVar("H", bound=Handler)


def handles(request: type[Command]) -> Callable[[H], H]:
    """Bind a handler to its command struct (a decorator)."""

    def bind(handler: H) -> H:
        if request in HANDLERS:
            raise ValueError(f"{request.__name__} has two handlers")
        HANDLERS[request] = handler
        return handler

    return bind


async def run_command(gw: Gateway, caller: Caller, cmd: Command) -> Any:
    """Run one command for ``caller`` and return its reply data; errors are raised as zapgate errors.

    With several nodes, a command for a session another node runs is forwarded there and answered as if it ran
    here (``docs/scaling.md``); the checks below then run on both nodes."""
    spec = COMMANDS[str(type(cmd).__struct_config__.tag)]
    try:
        _check(gw, caller, cmd, spec)
        if gw.cluster is not None and gw.cluster.router is not None:
            result = await gw.cluster.router.route(caller, cmd)
        else:
            result = await _handle(gw, caller, cmd, spec)
    except ZapgateError as exc:
        if audited(spec) or isinstance(exc, Forbidden):
            await _audit(gw, caller, spec, cmd, exc.code)
        raise
    except Exception:
        if audited(spec):
            await _audit(gw, caller, spec, cmd, "internal")
        raise
    if audited(spec):
        await _audit(gw, caller, spec, cmd, "ok", result)
    if caller.sessions is not None and spec.name == "session.list":
        return _only_allowed_sessions(caller, result)
    return result


def _only_allowed_sessions(caller: Caller, result: Any) -> SessionListResult:
    if not isinstance(result, SessionListResult):  # forwarded from another node: still encoded
        result = msgspec.json.decode(bytes(result), type=SessionListResult)
    return SessionListResult(sessions=[s for s in result.sessions if caller.may_use(s.session)])


async def _audit(
    gw: Gateway, caller: Caller, spec: CommandSpec, cmd: Command, outcome: str, result: Any = None
) -> None:
    """Write the command's audit entry; a failure to write it is logged, and does not change the answer."""
    fields = msgspec.structs.asdict(cmd)
    fields.pop("id", None)
    session = fields.get("session")
    if spec.scope is Scope.ADMIN:
        # The tenant acted on: named by the command, or by what it answers (the token token.revoke revoked).
        tenant = fields.get("tenant") or getattr(result, "tenant", None)
        detail = encode({k: v for k, v in fields.items() if v is not None and v is not msgspec.UNSET}).decode()
    else:
        tenant, detail = caller.tenant, None
    try:
        await gw.storage.tenants.audit(
            ts=time.time(),
            token_id=caller.token_id,
            tenant=tenant if isinstance(tenant, str) else None,
            session=session if isinstance(session, str) else None,
            command=spec.name,
            outcome=outcome,
            detail=detail[:DETAIL_MAX_CHARS] if detail else None,
        )
    except Exception:
        log.exception("could not write the audit entry of %s (%s)", spec.name, outcome)


async def execute(gw: Gateway, caller: Caller, cmd: Command) -> Any:
    """Run one command here, whichever node runs its session (the router decided that already; the owner checks
    the caller again)."""
    spec = COMMANDS[str(type(cmd).__struct_config__.tag)]
    _check(gw, caller, cmd, spec)
    return await _handle(gw, caller, cmd, spec)


async def _handle(gw: Gateway, caller: Caller, cmd: Command, spec: CommandSpec) -> Any:
    handler = HANDLERS.get(type(cmd))
    if handler is None:  # every command has a handler; a test checks it
        raise InvalidRequest(f"no handler for {spec.name}")
    return await handler(gw, caller, cmd)


def _check(gw: Gateway, caller: Caller, cmd: Command, spec: CommandSpec) -> None:
    if spec.scope is not None and not caller.allows(spec.scope):
        raise Forbidden(f"{spec.name} needs a token with the {spec.scope.value!r} scope")
    if caller.sessions is not None:
        session = getattr(cmd, "session", None)
        if isinstance(session, str) and not caller.may_use(session):
            allowed = ", ".join(sorted(caller.sessions)) or "none"
            raise Forbidden(f"this token may only use the sessions: {allowed}")
    if spec.simulator_only and gw.sandbox is None:
        raise CommandUnavailable(f"{spec.name} exists only when the gateway runs with --engine simulator")
