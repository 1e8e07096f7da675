"""``/v1/asyncapi.json``: the AsyncAPI 3.0 description of the WebSocket protocol, generated from the registries.

The document describes **the gateway**: a ``receive`` operation is a frame a client sends (the ``auth`` frame and
every command, each with its reply), a ``send`` operation a frame the gateway sends on its own (``hello``,
``ready``, ``error`` and every event). One channel, ``/v1/ws``, carries them all. Payloads are JSON Schemas
(the AsyncAPI schema format, a superset of JSON Schema draft 07) of the same msgspec structs the server encodes
and decodes (:mod:`zapgate.server.schemas`); ``tests/test_asyncapi.py`` checks the document's structure and
validates every frame of the end-to-end suite against it.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..protocol import COMMANDS, EVENTS, PROTOCOL_VERSION, Auth, CloseCode, ErrorFrame, Hello, Ready
from .schemas import ProtocolSchemas, event_schema_name, reply_schema_name

__all__ = ["CHANNEL", "asyncapi_document", "command_message", "event_message", "reply_message"]

CHANNEL = "ws"

_ASYNCAPI_DESCRIPTION = (
    f"The zapgate WebSocket protocol v{PROTOCOL_VERSION} (`docs/protocol.md`). Connect to `/v1/ws` (optionally "
    f"offering the subprotocol `zapgate.v{PROTOCOL_VERSION}`), read `hello`, send `auth` with a token, read "
    "`ready`; then send commands (each gets exactly one `reply` with the same `id`) and receive events (each with "
    "a per-tenant `seq`, the resume cursor). This document describes the gateway: `receive` operations are frames "
    "clients send, `send` operations frames the gateway sends. Every command also has a REST route "
    "(`/v1/openapi.json`)."
)


def _key(name: str) -> str:
    """AsyncAPI keys allow only letters, digits, ``_`` and ``-``: ``session.start`` → ``session_start``."""
    return name.replace(".", "_")


def command_message(name: str) -> str:
    """The key of a command's message in the channel (``command_session_start``)."""
    return f"command_{_key(name)}"


def reply_message(name: str) -> str:
    return f"reply_{_key(name)}"


def event_message(name: str) -> str:
    return f"event_{_key(name)}"


def _close_codes() -> str:
    lines = [f"- {int(code)} `{code.name.lower()}`" for code in CloseCode]
    return "Close codes (what each means and what to do: `docs/protocol.md`):\n" + "\n".join(lines)


def asyncapi_document(host: str = "127.0.0.1:8787") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``/v1/ws`` (``host`` goes into the server entry)."""
    schemas = ProtocolSchemas("#/components/schemas/")
    messages: dict[str, Any] = {}

    def message(key: str, name: str, title: str, summary: str, payload: dict[str, Any]) -> None:
        messages[key] = {"name": name, "title": title, "summary": summary, "payload": payload}

    message("hello", "hello", "hello", "The gateway's first frame.", schemas.of(Hello))
    message(
        "auth", "auth", "auth", "The client's first frame: its token, and the seq to resume after.", schemas.of(Auth)
    )
    message("ready", "ready", "ready", "Authenticated; replayed events (if any) follow.", schemas.of(Ready))
    message(
        "error",
        "error",
        "error",
        "A connection-level error (a frame without a readable id, or auth).",
        schemas.of(ErrorFrame),
    )
    for spec in COMMANDS.values():
        summary = spec.summary + (" (simulator only)" if spec.simulator_only else "")
        message(command_message(spec.name), spec.name, spec.name, summary, schemas.of(spec.request))
        message(
            reply_message(spec.name),
            "reply",
            f"reply to {spec.name}",
            f"The reply to `{spec.name}`.",
            schemas.ref(reply_schema_name(spec.name)),
        )
    for event in EVENTS.values():
        message(
            event_message(event.name), "event", event.name, event.summary, schemas.ref(event_schema_name(event.name))
        )

    def ref(key: str) -> dict[str, str]:
        return {"$ref": f"#/channels/{CHANNEL}/messages/{key}"}

    channel_ref = {"$ref": f"#/channels/{CHANNEL}"}
    operations: dict[str, Any] = {
        "sendHello": {"action": "send", "channel": channel_ref, "messages": [ref("hello")]},
        "receiveAuth": {
            "action": "receive",
            "channel": channel_ref,
            "summary": "Authenticate (the first frame).",
            "messages": [ref("auth")],
            "reply": {"channel": channel_ref, "messages": [ref("ready"), ref("error")]},
        },
        "sendError": {"action": "send", "channel": channel_ref, "messages": [ref("error")]},
    }
    for spec in COMMANDS.values():
        operations[f"receive_{_key(spec.name)}"] = {
            "action": "receive",
            "channel": channel_ref,
            "summary": spec.summary,
            "description": spec.description.replace("``", "`")
            + (
                f"\n\nNeeds a token with the `{spec.scope.value}` scope."
                if spec.scope
                else "\n\nAny valid token may run it."
            ),
            "messages": [ref(command_message(spec.name))],
            "reply": {"channel": channel_ref, "messages": [ref(reply_message(spec.name))]},
        }
    for event in EVENTS.values():
        operations[f"send_{_key(event.name)}"] = {
            "action": "send",
            "channel": channel_ref,
            "summary": event.summary,
            "messages": [ref(event_message(event.name))],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "zapgate WebSocket API", "version": __version__, "description": _ASYNCAPI_DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": host,
                "protocol": "ws",
                "description": "The gateway; put TLS (wss) in front of it outside loopback.",
                "security": [{"$ref": "#/components/securitySchemes/token"}],
            }
        },
        "channels": {
            CHANNEL: {
                "address": "/v1/ws",
                "title": "The zapgate WebSocket",
                "description": _close_codes(),
                "servers": [{"$ref": "#/servers/gateway"}],
                "messages": messages,
            }
        },
        "operations": operations,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <token>` on the upgrade, or the `auth` frame (first frame).",
                }
            },
        },
    }
