"""The published contracts, as validators for tests: every frame the raw test client sends and receives is checked
against ``/v1/asyncapi.json``, and REST responses in the REST tests against ``/v1/openapi.json``.

The documents are generated once (they depend only on the registries and the settings), and one validator is
compiled per message or response schema and kept. Checking a valid frame uses ``jsonschema_rs`` (Rust; about
1.5 µs a frame against 300 µs for the Python ``jsonschema``, which would add minutes to the suite); only a frame
that fails is checked again with ``jsonschema`` for its clearest error. A frame that does not match raises
:class:`ContractError` naming the message, the JSON path and what is wrong.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import jsonschema_rs
from jsonschema.protocols import Validator as PyValidator

from zapgate.config import Settings
from zapgate.protocol import COMMANDS, EVENTS
from zapgate.server.asyncapi import CHANNEL, asyncapi_document, command_message, event_message, reply_message
from zapgate.server.openapi import openapi_document


class ContractError(AssertionError):
    """A frame or response that the published contract does not allow."""


@functools.cache
def asyncapi() -> dict[str, Any]:
    return asyncapi_document()


@functools.cache
def openapi() -> dict[str, Any]:
    return openapi_document(Settings())


class Validator:
    """A schema of one of the documents, compiled twice: fast to accept, clear to refuse."""

    def __init__(self, document: dict[str, Any], schema: dict[str, Any], draft: str) -> None:
        # "#/components/schemas/…" resolves against the root, so the root carries the components next to the
        # schema (under allOf: next to a bare $ref, draft 07 would ignore every other keyword).
        self.root = {"allOf": [schema], "components": {"schemas": document["components"]["schemas"]}}
        self.draft = draft
        self.fast = (jsonschema_rs.Draft7Validator if draft == "7" else jsonschema_rs.Draft202012Validator)(self.root)
        self._slow: PyValidator | None = None

    def best_error(self, instance: Any) -> jsonschema.ValidationError | None:
        if self.fast.is_valid(instance):
            return None
        if self._slow is None:
            cls = jsonschema.Draft7Validator if self.draft == "7" else jsonschema.Draft202012Validator
            self._slow = cls(self.root)
        return jsonschema.exceptions.best_match(self._slow.iter_errors(instance))


def _validator(document: dict[str, Any], schema: dict[str, Any], draft: str) -> Validator:
    return Validator(document, schema, draft)


@functools.cache
def _message_validator(key: str) -> Validator:
    document = asyncapi()
    payload = document["channels"][CHANNEL]["messages"][key]["payload"]
    return _validator(document, payload, "7")


def _check(validator: Validator, instance: Any, what: str) -> None:
    error = validator.best_error(instance)
    if error is not None:
        where = error.json_path
        problem = error.message[:300]
        raise ContractError(f"{what} does not match the contract at {where}: {problem}\n  {_short(instance)}")


def _short(instance: Any, limit: int = 600) -> str:
    text = repr(instance)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def check_client_frame(frame: Any) -> None:
    """A frame a client sends: ``auth`` or a command."""
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "auth":
        key = "auth"
    elif kind in COMMANDS:
        key = command_message(kind)
    else:
        raise ContractError(f"client frame of unknown type {kind!r} (send it with validate=False if on purpose)")
    _check(_message_validator(key), frame, f"client frame {kind!r}")


def check_server_frame(frame: Any, command: str | None = None) -> None:
    """A frame the server sends; ``command`` is the type of the command a ``reply`` answers, when known."""
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind in ("hello", "ready", "error"):
        key = kind
    elif kind == "event":
        name = frame.get("event")
        if name not in EVENTS:
            raise ContractError(f"event {name!r} is not declared: {frame!r}")
        key = event_message(name)
    elif kind == "reply":
        if command not in COMMANDS:
            _check(_any_reply(), frame, "reply")
            return
        key = reply_message(command)
    else:
        raise ContractError(f"server frame of unknown type {kind!r}: {frame!r}")
    _check(_message_validator(key), frame, f"server frame {key!r}")


@functools.cache
def _any_reply() -> Validator:
    """A reply to a command the server could not read: only the error form."""
    document = asyncapi()
    return _validator(document, {"$ref": "#/components/schemas/ErrorReply"}, "7")


# -- REST


@functools.cache
def _response_validator(path: str, method: str, status: int) -> Validator | None:
    document = openapi()
    responses = document["paths"][path][method.lower()]["responses"]
    response = responses.get(str(status)) or responses.get("default")
    if response is None:
        raise ContractError(f"{method} {path} answered {status}, which its OpenAPI operation does not list")
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    return None if schema is None else _validator(document, schema, "2020-12")


def check_rest_response(path: str, method: str, status: int, content_type: str, body: Any) -> None:
    """A REST response against its OpenAPI operation (``path`` is the template, ``/v1/sessions/{session}``)."""
    validator = _response_validator(path, method, status)
    if validator is None:
        return
    if not content_type.startswith("application/json"):
        raise ContractError(f"{method} {path} {status}: content type {content_type!r}, the contract says JSON")
    _check(validator, body, f"{method} {path} {status}")
