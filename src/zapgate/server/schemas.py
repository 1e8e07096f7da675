"""JSON Schemas of the protocol's structs, for ``/v1/openapi.json`` and ``/v1/asyncapi.json`` (pure, no I/O).

Everything is derived from the command and event registries with :func:`msgspec.json.schema_components`, then
adjusted in three ways so that a schema says exactly what the server accepts and sends:

- **required**: msgspec marks a field required when it has no default. That is right for what clients send,
  and for what the server sends with ``omit_defaults`` structs (a field equal to its default is left out).
  Structs without ``omit_defaults`` always send every field, so in server-sent structs all their fields are
  required.
- **patterns** are written for Python (``\\A…\\Z``, where ``$`` would also match before a final newline); JSON
  Schema patterns are ECMA-262, where ``^…$`` means exactly that: they are published as ``^…$``.
- **events**: the ``Event`` frame's ``data`` is typed per event name (one schema per registered event).
"""

from __future__ import annotations

import ast
import copy
import inspect
import itertools
import re
import textwrap
from collections.abc import Iterable
from typing import Any

import msgspec

from ..protocol import COMMANDS, EVENTS, Auth, ErrorBody, ErrorFrame, Event, Hello, Ready

__all__ = ["ProtocolSchemas", "event_schema_name", "reply_schema_name"]

_PY_ANCHORED = re.compile(r"\A\\A(.*)\\Z\Z", re.S)


def event_schema_name(event: str) -> str:
    """``session.status`` → ``SessionStatusEvent``."""
    return "".join(part.capitalize() for part in re.split(r"[._]", event)) + "Event"


def reply_schema_name(command: str) -> str:
    """``message.send`` → ``MessageSendReply``."""
    return "".join(part.capitalize() for part in re.split(r"[._]", command)) + "Reply"


def _structs(types: Iterable[Any]) -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for info in _walk(msgspec.inspect.multi_type_info(list(types))):
        cls = info.cls
        if found.setdefault(cls.__name__, cls) is not cls:
            raise ValueError(f"two structs are named {cls.__name__}: schema component names must be unique")
    return found


def _walk(infos: Iterable[msgspec.inspect.Type]) -> Iterable[msgspec.inspect.StructType]:
    seen: set[int] = set()
    stack = list(infos)
    while stack:
        info = stack.pop()
        if id(info) in seen:
            continue
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StructType):
            yield info
            stack.extend(f.type for f in info.fields)
        elif isinstance(info, msgspec.inspect.UnionType):
            stack.extend(info.types)
        elif isinstance(info, msgspec.inspect.Metadata):
            stack.append(info.type)
        elif isinstance(
            info,
            (
                msgspec.inspect.ListType,
                msgspec.inspect.SetType,
                msgspec.inspect.FrozenSetType,
                msgspec.inspect.VarTupleType,
            ),
        ):
            stack.append(info.item_type)
        elif isinstance(info, msgspec.inspect.TupleType):
            stack.extend(info.item_types)
        elif isinstance(info, msgspec.inspect.DictType):
            stack.extend((info.key_type, info.value_type))


def _field_docs(cls: type[msgspec.Struct]) -> dict[str, str]:
    """The docstrings written under a struct's fields (``x: int`` then ``\"\"\"…\"\"\"``), by wire name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    wire = {f.name: f.encode_name for f in msgspec.structs.fields(cls)}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.target.id in wire
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[wire[statement.target.id]] = " ".join(following.value.value.split())
    return docs


def _describe_fields(components: dict[str, Any], structs: dict[str, type[msgspec.Struct]]) -> None:
    for name, cls in structs.items():
        properties = components.get(name, {}).get("properties", {})
        for field, doc in _field_docs(cls).items():
            if field in properties and "description" not in properties[field]:
                properties[field]["description"] = doc


def _ecma_patterns(node: Any) -> None:
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            match = _PY_ANCHORED.match(pattern)
            if match:
                node["pattern"] = f"^{match.group(1)}$"
        for value in node.values():
            _ecma_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _ecma_patterns(value)


class ProtocolSchemas:
    """Component schemas of every command, reply, event and frame, and references to them.

    ``ref_prefix`` is where the components live in the document (``#/components/schemas/``)."""

    def __init__(self, ref_prefix: str = "#/components/schemas/") -> None:
        self.prefix = ref_prefix
        requests = [spec.request for spec in COMMANDS.values()] + [Auth]
        outputs = [spec.reply for spec in COMMANDS.values()] + [spec.data for spec in EVENTS.values()]
        outputs += [Hello, Ready, ErrorFrame, ErrorBody, Event]
        inputs_by_name, outputs_by_name = _structs(requests), _structs(outputs)
        # A struct in both directions (message content) has one schema: fine when it omits defaults (then what
        # it always sends is exactly what it requires); otherwise the two directions would disagree.
        for name in set(inputs_by_name) & set(outputs_by_name):
            cls = outputs_by_name[name]
            defaulted = [f.name for f in msgspec.structs.fields(cls) if f.required is False]
            if defaulted and not cls.__struct_config__.omit_defaults:
                raise ValueError(
                    f"{name} is in requests and in replies/events, has defaults {defaulted} and no omit_defaults: "
                    "give it omit_defaults=True, or use two structs"
                )
        _, components = msgspec.json.schema_components(requests + outputs, ref_template=ref_prefix + "{name}")
        for name, cls in outputs_by_name.items():
            schema = components.get(name)
            if schema is not None and not cls.__struct_config__.omit_defaults:
                schema["required"] = list(schema.get("properties", {}))
        _describe_fields(components, {**inputs_by_name, **outputs_by_name})
        _ecma_patterns(components)
        self.components: dict[str, Any] = components
        self._add_event_frames()
        self._add_reply_frames()

    def ref(self, name: str) -> dict[str, str]:
        if name not in self.components:
            raise KeyError(f"no schema component {name!r}")
        return {"$ref": self.prefix + name}

    def of(self, cls: Any) -> dict[str, Any]:
        """A reference to the component of a struct type."""
        return self.ref(cls.__name__)

    def _add_event_frames(self) -> None:
        base = self.components["Event"]
        names = []
        for spec in EVENTS.values():
            frame = copy.deepcopy(base)
            frame["title"] = event_schema_name(spec.name)
            frame["description"] = f"`{spec.name}`: {spec.summary}."
            frame["properties"]["event"] = {"const": spec.name}
            frame["properties"]["data"] = self.of(spec.data)
            frame["required"] = list(frame["properties"])
            self.components[frame["title"]] = frame
            names.append(frame["title"])
        self.components["Event"] = {
            "title": "Event",
            "description": "An event frame; `data` depends on `event`.",
            "oneOf": [self.ref(name) for name in names],
        }

    def _add_reply_frames(self) -> None:
        self.components["ErrorReply"] = {
            "title": "ErrorReply",
            "description": "The reply to a command that failed.",
            "type": "object",
            "properties": {
                "type": {"const": "reply"},
                "id": {"type": "string"},
                "ok": {"const": False},
                "error": self.of(ErrorBody),
            },
            "required": ["type", "id", "ok", "error"],
        }
        for spec in COMMANDS.values():
            name = reply_schema_name(spec.name)
            self.components[name] = {
                "title": name,
                "description": f"The reply to `{spec.name}`: its data, or an error.",
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": "reply"},
                            "id": {"type": "string"},
                            "ok": {"const": True},
                            "data": self.of(spec.reply),
                        },
                        "required": ["type", "id", "ok", "data"],
                    },
                    self.ref("ErrorReply"),
                ],
            }

    def request_body(self, cls: Any, drop: Iterable[str]) -> dict[str, Any]:
        """The schema of a command struct without some fields (``type``, ``id``, the path's): a REST body."""
        schema: dict[str, Any] = copy.deepcopy(self.components[cls.__name__])
        dropped = set(drop)
        schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in dropped}
        schema["required"] = [k for k in schema.get("required", []) if k not in dropped]
        return schema
