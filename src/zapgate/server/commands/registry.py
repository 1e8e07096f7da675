"""The table from command structs to handlers, and the one entry point that runs a command."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ...auth import Caller
from ...errors import CommandUnavailable, Forbidden, InvalidRequest
from ...gateway import Gateway
from ...protocol import COMMANDS, Command, CommandSpec

__all__ = ["HANDLERS", "Handler", "execute", "handles", "run_command"]

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
    _check(gw, caller, cmd)
    if gw.cluster is not None and gw.cluster.router is not None:
        return await gw.cluster.router.route(caller, cmd)
    return await execute(gw, caller, cmd)


async def execute(gw: Gateway, caller: Caller, cmd: Command) -> Any:
    """Run one command here, whichever node runs its session (the router decided that already)."""
    spec = _check(gw, caller, cmd)
    handler = HANDLERS.get(type(cmd))
    if handler is None:  # every command has a handler; a test checks it
        raise InvalidRequest(f"no handler for {spec.name}")
    return await handler(gw, caller, cmd)


def _check(gw: Gateway, caller: Caller, cmd: Command) -> CommandSpec:
    spec = COMMANDS[str(type(cmd).__struct_config__.tag)]
    if not caller.allows(spec.scope):
        raise Forbidden(f"{spec.name} needs a token with the {spec.scope.value!r} scope")
    if spec.simulator_only and gw.sandbox is None:
        raise CommandUnavailable(f"{spec.name} exists only when the gateway runs with --engine simulator")
    return spec
