"""Encoding and decoding frames, with precise errors for everything a client can get wrong (pure)."""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from ..errors import InvalidFrame, InvalidJSON, InvalidRequest, UnknownType

# Importing the modules that declare commands fills COMMANDS before the decoder below is built from it.
from . import admin, chats, contacts, events, groups, media, messages, presence, sessions, sim, subscriptions, webhooks  # noqa: F401
from .base import COMMANDS, Command
from .frames import Auth, ServerFrame

__all__ = ["COMMAND_TYPES", "ClientFrame", "decode_client_frame", "decode_server_frame", "encode"]

COMMAND_TYPES: frozenset[str] = frozenset(COMMANDS)
_CLIENT_TYPES = COMMAND_TYPES | {"auth"}

ClientFrame = Auth | Command
"""What :func:`decode_client_frame` returns: the ``auth`` frame or one of the commands in ``COMMANDS``."""


class _Envelope(msgspec.Struct):
    """Just enough of a frame to report a precise error for it."""

    type: Any = None
    id: Any = None


_client_union: Any = typing.Union[(Auth, *(spec.request for spec in COMMANDS.values()))]
_client_decoder = msgspec.json.Decoder(_client_union)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_server_decoder = msgspec.json.Decoder(ServerFrame)
_encoder = msgspec.json.Encoder()


def encode(obj: object) -> bytes:
    """Encode a frame or payload as compact JSON."""
    return _encoder.encode(obj)


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """Decode one client frame, or raise a :class:`~zapgate.errors.ProtocolError` saying what is wrong.

    The error carries the frame's ``id`` when it has a readable one, so the caller can answer it as a reply.
    """
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _explain(data, exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidJSON(f"frame is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidJSON(_TOO_DEEP) from None
    return frame


_TOO_DEEP = "frame is nested too deeply"


def _explain(data: str | bytes, exc: msgspec.ValidationError) -> Exception:
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.ValidationError:
        return InvalidFrame("a frame must be a JSON object with a string 'type'")
    except msgspec.DecodeError as decode_error:  # the typed decoder stopped at a field before the bad JSON
        return InvalidJSON(f"frame is not valid JSON: {decode_error}")
    except RecursionError:  # the envelope's Any fields decode whatever they hold, however deep
        return InvalidJSON(_TOO_DEEP)
    request_id = envelope.id if isinstance(envelope.id, str) and envelope.id else None
    if envelope.id is not None and not isinstance(envelope.id, str):
        return InvalidFrame("'id' must be a string (1-128 characters), e.g. \"7\", not a number")
    kind = envelope.type
    if kind is None:
        return InvalidFrame("frame has no 'type'", request_id)
    if not isinstance(kind, str):
        return InvalidFrame("'type' must be a string", request_id)
    if kind not in _CLIENT_TYPES:
        return UnknownType(f"unknown frame type {kind!r}; commands are: {', '.join(sorted(COMMAND_TYPES))}", request_id)
    return InvalidRequest(f"invalid {kind!r} frame: {exc}", request_id)


def decode_server_frame(data: str | bytes) -> ServerFrame:
    """Decode one server frame (used by the client SDK and tests)."""
    frame: ServerFrame = _server_decoder.decode(data)
    return frame
