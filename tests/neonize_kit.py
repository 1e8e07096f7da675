"""Offline test kit for the whatsapp adapter: complete ``neonize.proto`` events, neonize's own dispatch driven
from a foreign thread (as Go does), a recording stand-in for the worker around a session runner, and
:class:`FakeGo`, a stand-in for WhatsApp behind neonize's FFI object.

Everything between a test and :class:`FakeGo` is neonize's and zapgate's real code: the test replaces only
``NewAClient._NewAClient__client``, the object through which every neonize method calls into Go.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import EngineEvent
from zapgate.engines.whatsapp import nz
from zapgate.engines.whatsapp.ffi import FfiLock
from zapgate.engines.whatsapp.ipc import WorkerConfig
from zapgate.engines.whatsapp.polls import PollBook
from zapgate.engines.whatsapp.session import SessionRunner
from zapgate.engines.whatsapp.store import DeviceStores

N = nz.N
NOW_MS = 1_795_909_751_123

__all__ = [
    "ALICE",
    "ALICE_LID",
    "GROUP",
    "NOW_MS",
    "FakeGo",
    "RecordingHost",
    "deliver_like_go",
    "extended",
    "fake_store",
    "jid",
    "message_ev",
    "neonize_loop",
    "receipt_ev",
    "show_qr_like_go",
    "source",
    "text",
]

# -- builders of complete (all proto2-required fields set) neonize events


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> Any:
    value = nz.build_jid(user, server)
    value.Device = device
    return value


def source(chat: Any, sender: Any, *, from_me: bool = False, sender_alt: Any = None, recipient_alt: Any = None) -> Any:
    return N.MessageSource(
        Chat=chat,
        Sender=sender,
        IsFromMe=from_me,
        IsGroup=chat.Server == "g.us",
        SenderAlt=sender_alt or nz.EMPTY_JID,
        RecipientAlt=recipient_alt or nz.EMPTY_JID,
        BroadcastListOwner=nz.EMPTY_JID,
    )


def message_ev(content: Any, src: Any, *, msg_id: str = "3A0000000000000001", push_name: str = "Alice") -> Any:
    info = N.MessageInfo(
        MessageSource=src,
        ID=msg_id,
        ServerID=0,
        Type="text",
        Pushname=push_name,
        Timestamp=NOW_MS,
        Category="",
        Multicast=False,
        MediaType="",
        Edit="",
    )
    return N.Message(
        Info=info,
        Message=content,
        IsEphemeral=False,
        IsViewOnce=False,
        IsViewOnceV2=False,
        IsViewOnceV2Extension=False,
        IsDocumentWithCaption=False,
        IsLottieSticker=False,
        IsEdit=False,
        UnavailableRequestID="",
        RetryCount=0,
    )


def receipt_ev(ids: list[str], kind: int, chat: Any, reader: Any, **alts: Any) -> Any:
    return N.Receipt(MessageSource=source(chat, reader, **alts), MessageIDs=ids, Timestamp=1_795_909_760, Type=kind)


def text(body: str) -> Any:
    return nz.WAMessage(conversation=body)


def extended(body: str, *, quoting: str | None = None) -> Any:
    context = nz.ContextInfo(stanzaID=quoting) if quoting else None
    return nz.WAMessage(extendedTextMessage=nz.ExtendedTextMessage(text=body, contextInfo=context))


ALICE = jid("5511999990000")
ALICE_LID = jid("123456789012345", "lid")
GROUP = jid("120363000000000000", "g.us")


# -- the worker around a runner


class RecordingHost:
    """Stands in for the worker process around a runner: records what the runner reports, keeps its clients.

    ``proxy`` is where the runner's real connects go (a refusing local proxy or a dead port: never the
    internet); tests that never connect leave it None."""

    def __init__(self, data_dir: Path, *, proxy: str | None = None, go: FakeGo | None = None, **config: Any) -> None:
        values: dict[str, Any] = {
            "worker_id": 1,
            "data_dir": str(data_dir),
            "max_sessions": 10,
            "connect_attempts": 3,
            "connect_backoff_s": 0.01,
            "failed_retry_s": 300.0,
        }
        values.update(config)
        self.config = WorkerConfig(**values)
        self.data_dir = data_dir
        self.devices = DeviceStores(data_dir)
        self.ffi = FfiLock()
        self.proxy = proxy
        self.via = proxy
        self.events: list[EngineEvent] = []
        self.clients: list[Any] = []
        self.go = go
        """When set, the clients the runner makes talk to this fake instead of Go (behind the runner's guard)."""
        self.polls = PollBook(None)
        self._changed = asyncio.Event()

    def emit(self, session_id: str, event: EngineEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def adopt(self, create: Callable[[], Any]) -> Any:
        client = create()
        if self.go is not None:
            client._NewAClient__client.ffi = self.go  # keep the runner's GuardedGo, replace what it guards
        self.clients.append(client)
        return client

    def abandoned(self, task: asyncio.Task[Any]) -> None:
        pass

    def ended(self, runner: SessionRunner) -> None:
        pass

    async def next_event(self, count: int) -> EngineEvent:
        """Wait until at least ``count`` events were reported; return the ``count``-th."""
        async with asyncio.timeout(10):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.events[count - 1]

    async def first(self, where: Callable[[EngineEvent], bool]) -> EngineEvent:
        """The first reported event matching ``where`` (waiting for it)."""
        async with asyncio.timeout(10):
            while True:
                for event in self.events:
                    if where(event):
                        return event
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def neonize_loop() -> AsyncIterator[None]:
    """neonize dispatches events to one module-global loop; point it at this test's loop."""
    nz.events_module.event_global_loop = asyncio.get_running_loop()
    yield
    nz.events_module.event_global_loop = None


def deliver_like_go(client: Any, event: Any) -> None:
    """Serialise ``event`` and run neonize's ``Event.execute`` from a foreign thread, as the Go side does."""
    from neonize.events import EVENT_TO_INT

    code = 0 if isinstance(event, N.Device) else EVENT_TO_INT[type(event)]
    data = event.SerializeToString()  # raises if a proto2-required field is missing
    buffer = ctypes.create_string_buffer(data, len(data))
    thread = threading.Thread(target=client.event.execute, args=(0, ctypes.addressof(buffer), len(data), code))
    thread.start()
    thread.join()


def group_info_pb(group: str, subject: str = "", participants: list[Any] | None = None, **fields: Any) -> Any:
    """A ``GroupInfo`` protobuf with every field proto2 requires (``participants``: a list of ``GroupParticipant``)."""
    user, _, server = group.partition("@")
    values: dict[str, Any] = {
        "JID": nz.build_jid(user, server),
        "OwnerJID": nz.EMPTY_JID,
        "OwnerPN": nz.EMPTY_JID,
        "GroupName": N.GroupName(Name=subject, NameSetAt=0, NameSetBy=nz.EMPTY_JID),
        "GroupTopic": N.GroupTopic(Topic="", TopicID="", TopicSetAt=0, TopicSetBy=nz.EMPTY_JID, TopicDeleted=False),
        "GroupLocked": N.GroupLocked(isLocked=False),
        "GroupAnnounce": N.GroupAnnounce(IsAnnounce=False, AnnounceVersionID=""),
        "GroupEphemeral": N.GroupEphemeral(IsEphemeral=False, DisappearingTimer=0),
        "GroupIncognito": N.GroupIncognito(IsIncognito=False),
        "GroupParent": N.GroupParent(IsParent=False, DefaultMembershipApprovalMode=""),
        "GroupLinkedParent": N.GroupLinkedParent(LinkedParentJID=nz.EMPTY_JID),
        "GroupIsDefaultSub": N.GroupIsDefaultSub(IsDefaultSubGroup=False),
        "GroupCreated": 0,
        "ParticipantVersionID": "",
        "Participants": participants or [],
    }
    values.update(fields)
    return N.GroupInfo(**values)


def member_pb(jid_: Any, *, lid: Any = None, phone: Any = None, admin: bool = False, superadmin: bool = False) -> Any:
    return N.GroupParticipant(
        JID=jid_,
        LID=lid or nz.EMPTY_JID,
        PhoneNumber=phone or nz.EMPTY_JID,
        IsAdmin=admin,
        IsSuperAdmin=superadmin,
        DisplayName="",
        Error=0,
    )


def group_info_ev(group: str, **fields: Any) -> Any:
    """A ``GroupInfoEvent`` (``GroupInfoEv``) with every field proto2 requires."""
    user, _, server = group.partition("@")
    values: dict[str, Any] = {
        "JID": nz.build_jid(user, server),
        "Notify": "",
        "Timestamp": 1_795_909_800,
        "PrevParticipantsVersionID": "",
        "ParticipantVersionID": "",
        "JoinReason": "",
    }
    values.update(fields)
    return N.GroupInfoEvent(**values)


def show_qr_like_go(client: Any, code: str) -> None:
    buffer = ctypes.create_string_buffer(code.encode())
    thread = threading.Thread(target=client._NewAClient__onQr, args=(0, ctypes.addressof(buffer)))
    thread.start()
    thread.join()


def fake_store(path: Path, jid_text: str, lid: str) -> None:
    """A store holding the columns of whatsmeow's device table that zapgate reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY, lid TEXT)")
        conn.execute("INSERT INTO whatsmeow_device VALUES (?, ?)", (jid_text, lid))
    conn.close()


# -- WhatsApp behind the FFI


def _call_from_go_thread(callback: Any, text: str) -> None:
    """Call a ctypes string callback (QR, login status) from a foreign thread, as Go does."""
    buffer = ctypes.create_string_buffer(text.encode())
    thread = threading.Thread(target=callback, args=(0, ctypes.addressof(buffer)))
    thread.start()
    thread.join()


class FakeGo:
    """Stands in for Go and WhatsApp behind neonize's FFI object (``NewAClient._NewAClient__client``).

    - ``answers``: number → (JID WhatsApp answers, is on WhatsApp) for ``IsOnWhatsApp``; unknown numbers
      answer themselves, on WhatsApp. ``lookup_error`` makes every look-up fail with that text.
    - ``lids``: LID user → phone JID for ``GetPNFromLID``.
    - ``send_error``: every ``SendMessage`` fails with it; ``send_gate``: sends wait for it (to hold several in
      flight at once); ``in_flight``/``max_in_flight`` count them.
    - ``presence_errors``: the first ``SendPresence`` calls fail with these texts, in order.
    - Media: ``Upload`` records ``uploads`` (bytes, media type) and answers a fixed upload, or fails with
      ``upload_error``; ``DownloadAny`` records ``downloads`` (the message) and answers ``download_bytes``, or fails
      with ``download_error``.
    - Polls: ``BuildPollVote`` records (poll ``MessageInfo``, option names) in ``vote_builds`` and answers a vote
      whose payload is the plain ``PollVoteMessage`` (this fake does not encrypt; the real round trip is in
      ``test_whatsapp_polls_real.py``); ``DecryptPollVote`` reads it back, or fails with ``decrypt_error``;
      ``decrypt_gate``, when set, holds decryptions until it is set.
    - Groups: ``GetGroupInfo`` answers ``groups[jid]`` (a list of member JIDs), or fails with ``group_error``.
      ``CreateGroup`` makes ``120363000000000777@g.us`` with the members asked for, each with the error code of
      ``add_errors`` (by JID, 0 otherwise); ``UpdateGroupParticipants`` answers each with ``add_errors`` too and
      records the action; ``GetGroupInviteLink`` answers ``invite_code`` (a new one when revoked);
      ``JoinGroupWithLink`` joins ``invites[code]`` (or fails); ``LeaveGroup`` leaves.
    - ``connect_script``: what a ``Neonize`` (connect) call does, given this fake and its callbacks; by default it
      fails at once with :attr:`connect_error`.
    Every call is recorded in ``calls`` (name, decoded arguments).
    """

    def __init__(
        self,
        *,
        answers: dict[str, tuple[Any, bool]] | None = None,
        lids: dict[str, Any] | None = None,
        lookup_error: str = "",
        send_error: str = "",
        presence_errors: list[str] | None = None,
    ) -> None:
        self.answers = answers or {}
        self.lids = lids or {}
        self.lookup_error = lookup_error
        self.send_error = send_error
        self.presence_errors = list(presence_errors or [])
        self.sent: list[tuple[str, Any]] = []
        self.pair_requests: list[Any] = []
        self.calls: list[tuple[str, Any]] = []
        self.send_gate: asyncio.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.connect_error = "fake Go: no network here"
        self.connect_script: Callable[[FakeGo, dict[str, Any]], Any] | None = None
        self.uploads: list[tuple[bytes, int]] = []
        self.upload_error = ""
        self.downloads: list[Any] = []
        self.download_bytes = b""
        self.download_error = ""
        self.vote_builds: list[tuple[Any, list[str]]] = []
        self.decrypt_error = ""
        self.decrypt_gate: asyncio.Event | None = None
        self.groups: dict[str, list[Any]] = {}
        self.group_error = ""
        self.add_errors: dict[str, int] = {}
        self.invite_code = "AbCdEfGhIjKlMnOpQrStUv"
        self.invites: dict[str, str] = {}

    async def Neonize(self, *args: Any) -> bytes:
        (db, uuid, _jid, _jid_size, new_device, _level, qr_cb, login_cb, event_cb, _log_cb) = args[:10]
        props = nz.DeviceProps.FromString(args[12])
        proxy_ref = args[16]
        proxy = proxy_ref._obj.proxyAddress.decode() if proxy_ref is not None else None
        call = {
            "db": db.decode(),
            "uuid": uuid.decode(),
            "new_device": bool(new_device),
            "props": props,
            "proxy": proxy,
            "qr": qr_cb,
            "login": login_cb,
            "event": event_cb,
        }
        self.calls.append(("Neonize", call))
        if self.connect_script is not None:
            result = self.connect_script(self, call)
            if asyncio.iscoroutine(result):
                result = await result
            return str(result or "").encode()
        return self.connect_error.encode()

    @staticmethod
    def show(callback: Any, value: str) -> None:
        """Call a connect's QR or login callback from a foreign thread, as Go does."""
        _call_from_go_thread(callback, value)

    async def SetProxyAddress(self, uuid: bytes, settings: Any) -> bytes:
        raw = settings._obj
        self.calls.append(
            (
                "SetProxyAddress",
                {
                    "address": raw.proxyAddress.decode(),
                    "no_websocket": bool(raw.noWebsocket),
                    "only_login": bool(raw.onlyLogin),
                    "no_media": bool(raw.noMedia),
                },
            )
        )
        return b""

    async def Stop(self, uuid: bytes) -> None:
        self.calls.append(("Stop", uuid.decode()))

    async def IsOnWhatsApp(self, uuid: bytes, numbers: bytes, size: int) -> bytes:
        queried = numbers.decode().split()
        self.calls.append(("IsOnWhatsApp", queried))
        if self.lookup_error:
            return N.IsOnWhatsAppReturnFunction(Error=self.lookup_error).SerializeToString()
        answers = []
        for number in queried:
            answered, is_in = self.answers.get(number, (jid(number.lstrip("+")), True))
            answers.append(N.IsOnWhatsAppResponse(Query=number, JID=answered, IsIn=is_in))
        return N.IsOnWhatsAppReturnFunction(IsOnWhatsAppResponse=answers).SerializeToString()

    async def GetPNFromLID(self, uuid: bytes, buffer: bytes, size: int) -> bytes:
        lid = N.JID.FromString(buffer)
        self.calls.append(("GetPNFromLID", nz.Jid2String(lid)))
        phone = self.lids.get(lid.User)
        if phone is None:
            return N.GetJIDFromStoreReturnFunction(Error="no mapping").SerializePartialToString()
        return N.GetJIDFromStoreReturnFunction(Jid=phone).SerializeToString()

    async def PairPhone(self, uuid: bytes, payload: bytes, size: int) -> bytes:
        self.pair_requests.append(N.PairPhoneParams.FromString(payload))
        return N.PairPhoneReturnFunction(Code="ABCD-EFGH").SerializeToString()

    async def SendPresence(self, uuid: bytes, presence: bytes) -> bytes:
        self.calls.append(("SendPresence", presence.decode()))
        return self.presence_errors.pop(0).encode() if self.presence_errors else b""

    async def MarkRead(self, uuid: bytes, ids: bytes, timestamp: int, chat: bytes, chat_size: int, *rest: Any) -> bytes:
        sender, _sender_size, receipt = rest
        self.calls.append(
            (
                "MarkRead",
                {
                    "ids": ids.decode().split(),
                    "chat": nz.Jid2String(N.JID.FromString(chat)),
                    "sender": nz.Jid2String(N.JID.FromString(sender)),
                    "receipt": receipt,
                },
            )
        )
        return b""

    async def SendMessage(self, uuid: bytes, to: bytes, to_size: int, message: bytes, size: int) -> bytes:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.send_gate is not None:
                await self.send_gate.wait()
            if self.send_error:
                return N.SendMessageReturnFunction(Error=self.send_error).SerializePartialToString()
            self.sent.append((nz.Jid2String(N.JID.FromString(to)), nz.WAMessage.FromString(message)))
            response = N.SendResponse(
                ID=f"3EB0{len(self.sent):018X}",
                Timestamp=1_795_909_999,
                ServerID=0,
                DebugTimings=N.MessageDebugTimings(),
            )
            return N.SendMessageReturnFunction(SendResponse=response).SerializePartialToString()
        finally:
            self.in_flight -= 1

    async def Upload(self, uuid: bytes, data: bytes, size: int, media_type: int) -> bytes:
        self.uploads.append((bytes(data[:size]), media_type))
        if self.upload_error:
            return N.UploadReturnFunction(Error=self.upload_error).SerializePartialToString()
        response = N.UploadResponse(
            url="https://mmg.whatsapp.net/v/t62.7118-24/upload.enc",
            DirectPath="/v/t62.7118-24/upload.enc",
            Handle="",
            MediaKey=b"k" * 32,
            FileEncSHA256=b"e" * 32,
            FileSHA256=b"s" * 32,
            FileLength=size,
        )
        return N.UploadReturnFunction(UploadResponse=response).SerializeToString()

    async def DownloadAny(self, uuid: bytes, message: bytes, size: int) -> bytes:
        self.downloads.append(nz.WAMessage.FromString(message))
        if self.download_error:
            return N.DownloadReturnFunction(Error=self.download_error).SerializePartialToString()
        return N.DownloadReturnFunction(Binary=self.download_bytes).SerializePartialToString()

    async def BuildPollVote(self, uuid: bytes, info: bytes, info_size: int, names: bytes, names_size: int) -> bytes:
        poll = N.MessageInfo.FromString(info)
        chosen = list(N.ArrayString.FromString(names).data)
        self.vote_builds.append((poll, chosen))
        source = poll.MessageSource
        key = nz.MessageKey(remoteJID=nz.Jid2String(source.Chat), fromMe=source.IsFromMe, ID=poll.ID)
        plain = nz.E2E.PollVoteMessage(selectedOptions=[hashlib.sha256(n.encode()).digest() for n in chosen])
        update = nz.E2E.PollUpdateMessage(
            pollCreationMessageKey=key, vote=nz.E2E.PollEncValue(encPayload=plain.SerializeToString(), encIV=b"i" * 12)
        )
        return N.BuildPollVoteReturnFunction(PollVote=nz.WAMessage(pollUpdateMessage=update)).SerializeToString()

    async def DecryptPollVote(self, uuid: bytes, event: bytes, size: int) -> bytes:
        if self.decrypt_gate is not None:
            await self.decrypt_gate.wait()
        if self.decrypt_error:
            return N.ReturnFunctionWithError(Error=self.decrypt_error).SerializeToString()
        update = N.Message.FromString(event).Message.pollUpdateMessage
        vote = nz.E2E.PollVoteMessage.FromString(update.vote.encPayload)
        return N.ReturnFunctionWithError(PollVoteMessage=vote).SerializeToString()

    async def GetGroupInfo(self, uuid: bytes, group: bytes, size: int) -> bytes:
        jid_text = nz.Jid2String(N.JID.FromString(group))
        self.calls.append(("GetGroupInfo", jid_text))
        if self.group_error or jid_text not in self.groups:
            error = self.group_error or "info query returned status 404: item-not-found"
            return N.GetGroupInfoReturnFunction(Error=error).SerializePartialToString()
        empty = nz.EMPTY_JID
        members = [N.GroupParticipant(JID=member, LID=empty, PhoneNumber=empty) for member in self.groups[jid_text]]
        info = N.GroupInfo(JID=N.JID.FromString(group), Participants=members)
        return N.GetGroupInfoReturnFunction(GroupInfo=info).SerializePartialToString()

    def _participants(self, members: list[Any]) -> list[Any]:
        empty = nz.EMPTY_JID
        return [
            N.GroupParticipant(JID=m, LID=empty, PhoneNumber=empty, Error=self.add_errors.get(nz.Jid2String(m), 0))
            for m in members
        ]

    async def GenerateMessageID(self, uuid: bytes) -> bytes:
        return b"3EB0000000000000000001"

    async def CreateGroup(self, uuid: bytes, request: bytes, size: int) -> bytes:
        asked = N.ReqCreateGroup.FromString(request)
        self.calls.append(("CreateGroup", (asked.name, [nz.Jid2String(j) for j in asked.Participants])))
        group = "120363000000000777@g.us"
        self.groups[group] = [j for j in asked.Participants if not self.add_errors.get(nz.Jid2String(j))]
        info = N.GroupInfo(
            JID=nz.build_jid("120363000000000777", "g.us"),
            OwnerJID=nz.build_jid("5511911112222"),
            GroupName=N.GroupName(Name=asked.name),
            Participants=self._participants(list(asked.Participants)),
        )
        return N.GetGroupInfoReturnFunction(GroupInfo=info).SerializePartialToString()

    async def UpdateGroupParticipants(
        self, uuid: bytes, group: bytes, size: int, people: bytes, people_size: int, action: bytes
    ) -> bytes:
        members = list(N.JIDArray.FromString(people).JIDS)
        jid_text = nz.Jid2String(N.JID.FromString(group))
        self.calls.append(("UpdateGroupParticipants", (jid_text, [nz.Jid2String(m) for m in members], action.decode())))
        answer = N.UpdateGroupParticipantsReturnFunction(participants=self._participants(members))
        return answer.SerializePartialToString()

    async def GetGroupInviteLink(self, uuid: bytes, group: bytes, size: int, revoke: bool) -> bytes:
        self.calls.append(("GetGroupInviteLink", (nz.Jid2String(N.JID.FromString(group)), revoke)))
        if revoke:
            self.invite_code = self.invite_code[::-1]
        link = "https://chat.whatsapp.com/" + self.invite_code
        return N.GetGroupInviteLinkReturnFunction(InviteLink=link).SerializeToString()

    async def JoinGroupWithLink(self, uuid: bytes, code: bytes) -> bytes:
        self.calls.append(("JoinGroupWithLink", code.decode()))
        group = self.invites.get(code.decode())
        if group is None:
            return N.JoinGroupWithLinkReturnFunction(Error="that group invite link is not valid").SerializeToString()
        user, _, server = group.partition("@")
        return N.JoinGroupWithLinkReturnFunction(Jid=nz.build_jid(user, server)).SerializePartialToString()

    async def LeaveGroup(self, uuid: bytes, group: bytes, size: int) -> bytes:
        self.calls.append(("LeaveGroup", nz.Jid2String(N.JID.FromString(group))))
        return b""

    async def SendChatPresence(self, uuid: bytes, chat: bytes, size: int, state: int, media: int) -> bytes:
        self.calls.append(("SendChatPresence", (nz.Jid2String(N.JID.FromString(chat)), state, media)))
        return b""

    async def SubscribePresence(self, uuid: bytes, jid_bytes: bytes, size: int) -> bytes:
        self.calls.append(("SubscribePresence", nz.Jid2String(N.JID.FromString(jid_bytes))))
        return b""

    def named(self, name: str) -> list[Any]:
        return [args for called, args in self.calls if called == name]
