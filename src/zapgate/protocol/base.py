"""The building blocks of the wire protocol: field types, the command and event registries (pure, no I/O).

Every command is a msgspec struct tagged by ``type`` and declared with :func:`command`, which records what it
answers (its reply struct), the scope a token needs to run it, and its REST route. Every event payload is
declared with :func:`event`. The WebSocket dispatcher, the REST routes, ``/v1/openapi.json``,
``/v1/asyncapi.json`` and the documentation tests are all derived from these two registries, so a command or an
event cannot exist in one place and be missing from another.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec

__all__ = [
    "COMMANDS",
    "EVENTS",
    "Command",
    "CommandSpec",
    "Empty",
    "EventSpec",
    "IdempotencyKey",
    "MessageId",
    "Recipient",
    "RequestId",
    "Scope",
    "Seq",
    "SessionName",
    "command",
    "event",
]

# Patterns use \A and \Z: msgspec searches with Python's re, where "$" also matches before a final newline.
SessionName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z",
        description="1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="chosen by the client")]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="a WhatsApp message id")]
Recipient = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        description="a phone number in international format (+55 11 99999-0000) or a JID (…@s.whatsapp.net, "
        "…@g.us, …@lid)",
    ),
]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Seq = Annotated[int, msgspec.Meta(ge=0, description="an event sequence number of the tenant")]


class Scope(enum.StrEnum):
    """What a token may do. ``tenant`` includes ``send`` and ``read``; ``admin`` manages tenants and tokens."""

    READ = "read"
    """Receive and read events."""
    SEND = "send"
    """Send messages and read their results (and everything ``read`` allows)."""
    TENANT = "tenant"
    """Everything within the tenant: sessions, messages, groups, contacts, webhooks."""
    ADMIN = "admin"
    """Tenants, tokens and the audit log of every tenant."""


class _Frame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """Base of client frames: tagged by ``type``, unknown fields rejected."""


class Command(_Frame):
    """Base of every command: ``id`` is chosen by the client and comes back in the reply."""

    id: RequestId


class Empty(msgspec.Struct):
    """A reply with nothing to say: ``{}``."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command of the protocol: its request struct and what surrounds it."""

    name: str
    request: type[Command]
    reply: Any
    """The type of the reply's ``data`` (a struct, usually)."""
    scope: Scope | None
    """The scope a token needs to run it; None: any valid token (``ping``)."""
    http: tuple[str, str] | None
    """(method, path) of its REST route; path parameters name request fields (``/v1/sessions/{session}``)."""
    summary: str
    simulator_only: bool = False

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.request.__doc__ or "")


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    data: Any
    summary: str


COMMANDS: dict[str, CommandSpec] = {}
"""Every command by its ``type``, in declaration order."""
EVENTS: dict[str, EventSpec] = {}
"""Every event by its name, with the type of its ``data``."""

C = TypeVar("C", bound=type[Command])


def command(
    *,
    reply: Any,
    scope: Scope | None,
    http: tuple[str, str] | None = None,
    summary: str = "",
    simulator_only: bool = False,
) -> Callable[[C], C]:
    """Declare a command struct (a class decorator): what it answers, who may run it, its REST route."""

    def register(cls: C) -> C:
        name = str(cls.__struct_config__.tag)
        if name in COMMANDS:
            raise ValueError(f"command {name!r} declared twice")
        COMMANDS[name] = CommandSpec(
            name=name,
            request=cls,
            reply=reply,
            scope=scope,
            http=http,
            summary=summary or _first_sentence(cls.__doc__) or name,
            simulator_only=simulator_only,
        )
        return cls

    return register


def _first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").split())
    end = re.search(r"\.(\s|$)", text)
    return text[: end.start()] if end else text


def event(name: str, data: Any, summary: str) -> None:
    """Declare an event: its name and the type of its ``data``."""
    if name in EVENTS:
        raise ValueError(f"event {name!r} declared twice")
    EVENTS[name] = EventSpec(name, data, summary)
