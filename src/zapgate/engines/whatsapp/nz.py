"""The one place that imports neonize. Only engine worker processes (and tests of the adapter) import this.

Importing neonize loads its Go library, calls ``logging.basicConfig`` on the root logger, starts a log
forwarding thread and leaves an unclosed ``os.popen`` pipe behind (a ``ResourceWarning``). This module
imports it with that warning silenced, puts the root logger back as it was, and sets the level of the Go
logs *before* any connect (neonize fixes the Go log level at ``connect()`` from the ``neonize.utils.log``
logger; the default would send every WhatsApp stanza across the FFI as a DEBUG log).

It also mends one binding of neonize 0.5.2: ``DecryptPollVote`` returns a Go-allocated buffer like every other
function that returns protobuf bytes, but neonize forgot it in the list of functions whose result it copies
into ``bytes`` and frees, so ``decrypt_poll_vote`` fails on every real vote with ``TypeError: expected bytes,
LP_Bytes found`` (and would leak the buffer). The same copy-and-free hook neonize uses for the others is
attached to it here.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import subprocess
import warnings
from typing import Any

__all__ = [
    "E2E",
    "EMPTY_JID",
    "ChatPresence",
    "ChatPresenceMedia",
    "ClientName",
    "ContextInfo",
    "DeviceProps",
    "ExtendedTextMessage",
    "JIDToNonAD",
    "Jid2String",
    "MediaType",
    "MessageKey",
    "N",
    "NewAClient",
    "Presence",
    "ProxySettings",
    "ReceiptType",
    "SetProxyAddressError",
    "WAMessage",
    "build_edit",
    "build_jid",
    "build_revoke",
    "events_module",
    "neonize_version",
    "set_go_log_level",
]


def _reap_uname() -> None:
    """neonize runs ``os.popen("uname -a")`` and never closes it: the ``Popen`` waits in ``subprocess._active``
    and its unclosed pipe raises a ``ResourceWarning`` at some later, unrelated subprocess start. Reap it now,
    while that warning is silenced."""
    for proc in list(getattr(subprocess, "_active", None) or ()):
        if proc.args == "uname -a":
            with contextlib.suppress(Exception):
                if proc.stdout is not None:
                    proc.stdout.close()
                proc.wait(timeout=5)
                subprocess._active.remove(proc)  # type: ignore[attr-defined]
    gc.collect()


def _mend_decrypt_poll_vote(binder: Any) -> None:
    """See the module documentation: give ``DecryptPollVote`` the copy-and-free hook neonize gives its siblings."""
    gocode = getattr(binder, "gocode", None)
    hook = getattr(binder, "consume_bytes_struct", None)
    function = getattr(gocode, "DecryptPollVote", None)
    if function is not None and hook is not None:
        function.errcheck = hook


def _import_quietly() -> dict[str, Any]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            import neonize
            import neonize._binder as binder
            import neonize.aioze.client as client_module
            import neonize.aioze.events as events_module
            from neonize._binder import ProxySettings
            from neonize.builder import build_edit, build_revoke
            from neonize.exc import SetProxyAddressError
            from neonize.proto import Neonize_pb2
            from neonize.proto.waCommon.WACommon_pb2 import MessageKey
            from neonize.proto.waCompanionReg.WAWebProtobufsCompanionReg_pb2 import DeviceProps
            from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e
            from neonize.utils.enum import (
                ChatPresence,
                ChatPresenceMedia,
                ClientName,
                MediaType,
                ParticipantChange,
                Presence,
                ReceiptType,
            )
            from neonize.utils.jid import Jid2String, JIDToNonAD, build_jid

            _reap_uname()
            _mend_decrypt_poll_vote(binder)
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
    # zapgate never uses neonize's ffmpeg helpers (it builds media messages itself); neonize warns at every connect.
    logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)
    return {
        "version": neonize.__version__,
        "client": client_module,
        "events": events_module,
        "SetProxyAddressError": SetProxyAddressError,
        "N": Neonize_pb2,
        "e2e": e2e,
        "ClientName": ClientName,
        "ChatPresence": ChatPresence,
        "ChatPresenceMedia": ChatPresenceMedia,
        "MediaType": MediaType,
        "ParticipantChange": ParticipantChange,
        "MessageKey": MessageKey,
        "build_edit": build_edit,
        "build_revoke": build_revoke,
        "ReceiptType": ReceiptType,
        "Presence": Presence,
        "ProxySettings": ProxySettings,
        "DeviceProps": DeviceProps,
        "Jid2String": Jid2String,
        "JIDToNonAD": JIDToNonAD,
        "build_jid": build_jid,
    }


_m = _import_quietly()

neonize_version: str = _m["version"]
NewAClient: Any = _m["client"].NewAClient
events_module: Any = _m["events"]
"""``neonize.aioze.events``: the event classes (``MessageEv``, ``ReceiptEv`` ...) and the global loop."""
SetProxyAddressError: type[Exception] = _m["SetProxyAddressError"]
N: Any = _m["N"]
"""``neonize.proto.Neonize_pb2``: JID, Message (the message event), Receipt, PairStatus ..."""
E2E: Any = _m["e2e"]
"""``neonize.proto.waE2E.WAWebProtobufsE2E_pb2``: WhatsApp's message protobufs (``ImageMessage`` ...)."""
WAMessage: Any = _m["e2e"].Message
MessageKey: Any = _m["MessageKey"]
ExtendedTextMessage: Any = _m["e2e"].ExtendedTextMessage
ContextInfo: Any = _m["e2e"].ContextInfo
ClientName: Any = _m["ClientName"]
ReceiptType: Any = _m["ReceiptType"]
ChatPresence: Any = _m["ChatPresence"]
ChatPresenceMedia: Any = _m["ChatPresenceMedia"]
MediaType: Any = _m["MediaType"]
"""``neonize.utils.enum.MediaType``: which of WhatsApp's media keys an upload is encrypted for."""
ParticipantChange: Any = _m["ParticipantChange"]
"""``ADD``, ``REMOVE``, ``PROMOTE``, ``DEMOTE`` for ``update_group_participants``."""
build_edit: Any = _m["build_edit"]
build_revoke: Any = _m["build_revoke"]
"""neonize's pure-Python revoke builder (``client.revoke_message``/``build_revoke`` call ``get_me``, which aborts
the process on a client Go does not know)."""
Presence: Any = _m["Presence"]
ProxySettings: Any = _m["ProxySettings"]
"""``neonize._binder.ProxySettings(proxy_address, no_websocket=False, only_login=False, no_media=False)``."""
DeviceProps: Any = _m["DeviceProps"]
"""``waCompanionReg.DeviceProps``: ``os`` is the name the phone lists the linked device under."""
Jid2String: Any = _m["Jid2String"]
JIDToNonAD: Any = _m["JIDToNonAD"]
build_jid: Any = _m["build_jid"]

EMPTY_JID: Any = N.JID(User="", Server="", RawAgent=0, Device=0, Integrator=0, IsEmpty=True)


def set_go_log_level(level: int) -> None:
    """Level of the whatsmeow logs forwarded from Go; read by neonize at each ``connect()``."""
    logging.getLogger("neonize.utils.log").setLevel(level)


set_go_log_level(logging.WARNING)
