"""Support for the protocol fuzzer (``test_fuzz.py``): hypothesis strategies built from the protocol's own JSON
schemas, mutations of valid frames, a live gateway in a thread of its own, and the checks every answer must pass.

msgspec structs are not something ``hypothesis.strategies.from_type`` understands, so the strategies are derived
from ``msgspec.json.schema_components`` of every command (and the ``auth`` frame): the same schemas the AsyncAPI
document publishes. Only the subset msgspec emits is handled (types, enums, patterns, lengths, bounds, unions,
references).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from zapgate.config import Settings
from zapgate.errors import ERRORS_BY_CODE
from zapgate.protocol import COMMANDS
from zapgate.protocol.frames import Auth

from .support import TIMEOUT, RunningGateway, serve_gateway

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
PROTOCOL_DOC = (ROOT / "docs" / "protocol.md").read_text()

JSON = Any
Strategy = st.SearchStrategy[Any]

# -- what counts as documented ---------------------------------------------------------------------------------


def documented_close_codes() -> frozenset[int]:
    """Every code in docs/protocol.md's "Close codes" table."""
    section = PROTOCOL_DOC.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    codes = set()
    for line in section.splitlines():
        if line.startswith("| ") and line[2:3].isdigit():
            codes.update(int(c) for c in re.findall(r"\b(\d{4})\b", line.split("|")[1]))
    return frozenset(codes)


CLOSE_CODES = documented_close_codes()
ERROR_CODES = frozenset(code for code in ERRORS_BY_CODE if code != "internal" and f"`{code}`" in PROTOCOL_DOC)


# -- strategies from the schemas ---------------------------------------------------------------------------------


def _components() -> dict[str, Any]:
    _, components = msgspec.json.schema_components([*(spec.request for spec in COMMANDS.values()), Auth])
    return components


class SchemaStrategies:
    """Strategies for the values a JSON schema (as msgspec writes them) accepts."""

    def __init__(self, components: dict[str, Any]) -> None:
        self.components = components
        self._refs: dict[str, Strategy] = {}

    def of(self, schema: dict[str, Any]) -> Strategy:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            if name not in self._refs:
                self._refs[name] = st.deferred(lambda: self.of(self.components[name]))
            return self._refs[name]
        if "anyOf" in schema:
            return st.one_of([self.of(option) for option in schema["anyOf"]])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.of({**schema, "type": k}) for k in kind])
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**63)) + ("exclusiveMinimum" in schema))
            high = schema.get("maximum", schema.get("exclusiveMaximum", 2**63) - ("exclusiveMaximum" in schema))
            return st.integers(min_value=low, max_value=high)
        if kind == "number":
            return st.floats(
                min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
                max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
                exclude_min="exclusiveMinimum" in schema,
                exclude_max="exclusiveMaximum" in schema,
                allow_nan=False,
                allow_infinity=False,
            )
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            items = self.of(schema.get("items", {}))
            return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
        if kind == "object":
            return self._object(schema)
        return JSON_VALUES

    def _string(self, schema: dict[str, Any]) -> Strategy:
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s))
        return st.text(min_size=low, max_size=max(low, high))

    def _object(self, schema: dict[str, Any]) -> Strategy:
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fixed = {name: self._property(name, sub) for name, sub in properties.items() if name in required}
        optional = {name: self._property(name, sub) for name, sub in properties.items() if name not in required}
        return st.fixed_dictionaries(fixed, optional=optional)

    def _property(self, name: str, schema: dict[str, Any]) -> Strategy:
        if name == "url":  # webhooks, media and link URLs: never a name to resolve, never a host off this machine
            return st.sampled_from(LOOPBACK_URLS)
        return self.of(schema)


LOOPBACK_URLS = ("http://[::1]:9/hook", "https://[::1]:9/x.jpg", "ftp://[::1]/x", "http://[::1")
"""What the fuzzer puts in ``url`` fields: tests reach nothing beyond loopback, and an IPv6 literal stays one (or
becomes invalid) under the mutations, where a host name could turn into a DNS look-up."""

JSON_VALUES: Strategy = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
"""Any JSON value (for type swaps)."""

_SCHEMAS = SchemaStrategies(_components())


def command_frames() -> Strategy:
    """A frame for one of the protocol's commands, valid as its schema says (the server may still refuse it:
    an unknown session, a bad phone number...)."""
    strategies = [_SCHEMAS.of({"$ref": f"#/$defs/{spec.request.__name__}"}) for spec in COMMANDS.values()]
    return st.one_of(strategies)


def auth_frames() -> Strategy:
    return _SCHEMAS.of({"$ref": f"#/$defs/{Auth.__name__}"})


# -- mutations ---------------------------------------------------------------------------------------------------


def _nest(depth: int, value: JSON, as_object: bool) -> bytes:
    inner = json.dumps(value).encode()
    if as_object:
        return b'{"a":' * depth + inner + b"}" * depth
    return b"[" * depth + inner + b"]" * depth


@st.composite
def mutated_frames(draw: st.DrawFn, valid: Strategy) -> tuple[bytes, bool]:
    """(bytes, as_text): a valid frame, then one mutation of it: a byte flip, a truncation, inserted bytes, a
    field's value swapped for another JSON type, a value nested deeply, a duplicated key, or a huge number."""
    frame: dict[str, Any] = draw(valid)
    how = draw(
        st.sampled_from(["flip", "truncate", "insert", "swap", "nest", "duplicate", "number", "binary", "whole"])
    )
    if how == "swap" and frame:
        key = draw(st.sampled_from(sorted(frame)))
        frame = {**frame, key: draw(JSON_VALUES)}
    elif how == "nest" and frame:
        key = draw(st.sampled_from(sorted(frame)))
        depth = draw(st.sampled_from([2, 64, 300, 1000, 5000, 12000]))
        raw = json.dumps({k: v for k, v in frame.items() if k != key}).encode()
        nested = _nest(depth, frame[key], draw(st.booleans()))
        joined = raw[:-1] + (b", " if len(raw) > 2 else b"") + json.dumps(key).encode() + b": " + nested + b"}"
        return joined, True
    data = json.dumps(frame, ensure_ascii=draw(st.booleans())).encode()
    if how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif how == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    elif how == "duplicate" and frame:
        key = draw(st.sampled_from(sorted(frame)))
        data = data[:-1] + b", " + json.dumps(key).encode() + b": " + json.dumps(draw(JSON_VALUES)).encode() + b"}"
    elif how == "number":
        data = data[:-1] + b', "n": ' + draw(st.sampled_from([b"1e999999", b"-0", b"9" * 5000, b"1.5e-400"])) + b"}"
    elif how == "whole":
        data = json.dumps(draw(JSON_VALUES)).encode()
    return data, how != "binary"


# -- the live gateway --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def gateway_in_a_thread(settings: Settings) -> Iterator[RunningGateway]:
    """A real gateway (uvicorn on 127.0.0.1) running in its own thread and event loop, so that hypothesis's
    synchronous tests can talk to it with websockets' blocking client."""
    started = threading.Event()
    box: dict[str, Any] = {}

    async def run() -> None:
        stop = asyncio.Event()
        box["stop"] = (asyncio.get_running_loop(), stop)
        try:
            async with serve_gateway(settings) as running:
                box["gateway"] = running
                box["token"] = await running.token("fuzz")
                started.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=lambda: asyncio.run(run()), name="fuzzed-gateway", daemon=True)
    thread.start()
    assert started.wait(60 * TIMEOUT), "the gateway did not start"
    if "error" in box:
        raise box["error"]
    try:
        running: RunningGateway = box["gateway"]
        running.fuzz_token = box["token"]  # type: ignore[attr-defined]
        yield running
    finally:
        loop, stop = box["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(60 * TIMEOUT)


# -- talking to it -----------------------------------------------------------------------------------------------


class Finding(AssertionError):
    """An answer the protocol does not allow: the frame that caused it is saved to the corpus."""


class FuzzClient:
    """One WebSocket connection that sends fuzzed frames and checks every answer."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self.ws: ClientConnection | None = None
        self._sentinel = 0

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def _open(self) -> ClientConnection:
        # Entered as a context manager (websockets wants it), closed by close() or by the server.
        ws = connect(self.url, open_timeout=TIMEOUT, max_size=None, compression=None).__enter__()
        hello = json.loads(ws.recv(TIMEOUT))
        assert hello["type"] == "hello", hello
        if self.token is not None:
            ws.send(json.dumps({"type": "auth", "token": self.token}))
            ready = json.loads(ws.recv(TIMEOUT))
            assert ready["type"] == "ready", ready
        return ws

    def exchange(self, data: bytes, as_text: bool) -> tuple[list[dict[str, Any]], int | None]:
        """Send ``data`` and read every answer up to a ping's reply, or the close; check them all. Returns the
        answers and the close code (None while the connection stays open)."""
        ws = self.ws = self.ws or self._open()
        self._sentinel += 1
        sentinel = f"fuzz-sentinel-{self._sentinel}"
        answers: list[dict[str, Any]] = []
        try:
            ws.send(data, text=as_text)
            if self.token is not None:
                ws.send(json.dumps({"type": "ping", "id": sentinel}))
            while True:
                frame = json.loads(ws.recv(TIMEOUT * 10))
                if frame.get("type") == "reply" and frame.get("id") == sentinel:
                    return answers, None
                answers.append(frame)
                check_frame(frame, data)
        except ConnectionClosed as closed:
            self.ws = None
            code = closed.rcvd.code if closed.rcvd else None
            if code not in CLOSE_CODES:
                raise Finding(f"close code {code} is not in docs/protocol.md; frame {data[:200]!r}") from None
            return answers, code
        except TimeoutError:
            raise Finding(f"no answer within {TIMEOUT * 10:g} s; frame {data[:200]!r}") from None


def check_frame(frame: dict[str, Any], data: bytes) -> None:
    """An error frame or error reply must carry a documented code other than ``internal``."""
    error = frame.get("error") if frame.get("type") == "reply" and frame.get("ok") is False else None
    code = error["code"] if isinstance(error, dict) else frame.get("code") if frame.get("type") == "error" else None
    if code is None:
        return
    if code == "internal" or code not in ERROR_CODES:
        raise Finding(f"error code {code!r} ({frame}) answers frame {data[:200]!r}")


def save_to_corpus(data: bytes, as_text: bool, phase: str) -> Path:
    """Keep a frame that found something, as ``<phase>-<text|binary>-<sha1>.frame``; ``phase`` is ``preauth``
    or ``authed``."""
    CORPUS.mkdir(exist_ok=True)
    kind = "text" if as_text else "binary"
    path = CORPUS / f"{phase}-{kind}-{hashlib.sha1(data).hexdigest()[:16]}.frame"
    path.write_bytes(data)
    return path


def corpus() -> list[tuple[str, bytes, bool]]:
    """(phase, data, as_text) of every frame in the corpus."""
    found = []
    for path in sorted(CORPUS.glob("*.frame")):
        phase, kind, _ = path.stem.split("-", 2)
        found.append((phase, path.read_bytes(), kind == "text"))
    return found
