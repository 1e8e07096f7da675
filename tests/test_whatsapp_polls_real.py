"""Poll votes encrypted and decrypted by the real whatsmeow, offline: both directions between the session and a
contact, each a real (registered, never connected) client over a whatsmeow store holding a fabricated linked
device.

Only sending is faked (:class:`HalfGo`): it records the message and, as whatsmeow's ``SendMessage`` does before it
sends, stores the message secret. Everything else is whatsmeow's: ``BuildPollVote`` encrypts a vote with the
poll's secret from the store, ``DecryptPollVote`` decrypts it, and the session runner names the options from
its poll book. Each client is registered in Go by a connect through a local port where nothing listens (it
fails at once; Go keeps the client until ``stop()``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import MessageIn
from zapgate.engines.whatsapp import nz
from zapgate.engines.whatsapp.ipc import Send, TargetRef
from zapgate.engines.whatsapp.session import SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef
from zapgate.protocol import Me
from zapgate.protocol.content import Poll, Vote

from .neonize_kit import RecordingHost, deliver_like_go, jid, message_ev, source
from .offline_proxy import dead_port

N = nz.N
US, US_LID = "5511911112222", "99887766"
THEM, THEM_LID = "5521988880002", "11223344"
US_JID, THEM_JID = f"{US}@s.whatsapp.net", f"{THEM}@s.whatsapp.net"
STORE = "whatsapp/ses_poll.db"


def fabricate_device(store: Path, phone: str, lid: str, device: int) -> None:
    """A syntactically valid linked device (random keys) in whatsmeow's store, and its LID mapping."""
    with sqlite3.connect(store) as conn:
        columns = {
            "jid": f"{phone}:{device}@s.whatsapp.net",
            "lid": f"{lid}:{device}@lid",
            "registration_id": 1,
            "noise_key": os.urandom(32),
            "identity_key": os.urandom(32),
            "signed_pre_key": os.urandom(32),
            "signed_pre_key_id": 1,
            "signed_pre_key_sig": os.urandom(64),
            "adv_key": os.urandom(32),
            "adv_details": b"\x08\x01",
            "adv_account_sig": os.urandom(64),
            "adv_account_sig_key": os.urandom(32),
            "adv_device_sig": os.urandom(64),
            "platform": "android",
            "business_name": "",
            "push_name": phone,
        }
        marks = ", ".join("?" * len(columns))
        conn.execute(f"INSERT INTO whatsmeow_device ({', '.join(columns)}) VALUES ({marks})", list(columns.values()))
        conn.execute("INSERT INTO whatsmeow_lid_map (lid, pn) VALUES (?, ?)", (lid, phone))
    conn.close()


def store_secret(store: Path, owner: str, chat: str, sender: str, message_id: str, secret: bytes) -> None:
    """A message secret as whatsmeow keeps it (``whatsmeow_message_secrets``)."""
    with sqlite3.connect(store) as conn:
        conn.execute(
            "INSERT INTO whatsmeow_message_secrets (our_jid, chat_jid, sender_jid, message_id, key) VALUES (?,?,?,?,?)",
            (owner, chat, sender, message_id, secret),
        )
    conn.close()


class HalfGo:
    """Go itself, except ``SendMessage`` (which needs WhatsApp) and ``IsOnWhatsApp``: a sent message is recorded,
    and its secret stored where whatsmeow stores it before sending."""

    def __init__(self, real: Any, store: Path, owner: str) -> None:
        self.real = real
        self.store = store
        self.owner = owner
        self.sent: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def IsOnWhatsApp(self, uuid: bytes, numbers: bytes, size: int) -> bytes:
        answers = [N.IsOnWhatsAppResponse(Query=n, JID=jid(n.lstrip("+")), IsIn=True) for n in numbers.decode().split()]
        return N.IsOnWhatsAppReturnFunction(IsOnWhatsAppResponse=answers).SerializeToString()

    async def SendMessage(self, uuid: bytes, to: bytes, to_size: int, message: bytes, size: int) -> bytes:
        chat, sent = nz.Jid2String(N.JID.FromString(to)), nz.WAMessage.FromString(message)
        self.sent.append((chat, sent))
        message_id = f"3EB0{len(self.sent):018X}"
        secret = sent.messageContextInfo.messageSecret
        if secret:
            store_secret(self.store, self.owner, chat, US_JID, message_id, secret)
        response = N.SendResponse(
            ID=message_id, Timestamp=1_795_909_999, ServerID=0, DebugTimings=N.MessageDebugTimings()
        )
        return N.SendMessageReturnFunction(SendResponse=response).SerializePartialToString()


async def registered(client: Any) -> None:
    """Register ``client`` in Go with a connect that fails at once (nothing listens on the port)."""
    with dead_port() as port:
        task = await client.connect(nz.ProxySettings(proxy_address=f"http://127.0.0.1:{port}"))
        with pytest.raises(Exception, match=r"127\.0\.0\.1"):
            await asyncio.wait_for(task, 60)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SessionRunner, Any, HalfGo, Path]]:
    """The session's runner (real client, online) and the contact's real client, on one whatsmeow store."""
    from neonize.aioze.client import async_gocode

    nz.events_module.event_global_loop = asyncio.get_running_loop()  # neonize's dispatch targets this loop
    store = tmp_path / STORE
    store.parent.mkdir(parents=True)
    schema = nz.NewAClient(str(store), uuid=f"schema-{os.getpid()}-{id(tmp_path)}", new_device=True)
    await registered(schema)  # creates whatsmeow's tables
    await schema.stop()
    fabricate_device(store, US, US_LID, 7)
    fabricate_device(store, THEM, THEM_LID, 3)
    go = HalfGo(async_gocode, store, f"{US}:7@s.whatsapp.net")
    host = RecordingHost(tmp_path, go=go)
    device = DeviceRef(engine="whatsapp", jid=f"{US}:7@s.whatsapp.net", store=STORE)
    runner = SessionRunner(host, "ses_poll", device)
    ours = runner._client()
    await registered(ours)
    runner.online = True
    runner.me = Me(phone=US, jid=device.jid, lid=f"{US_LID}@lid")
    theirs = nz.NewAClient(
        str(store),
        jid=N.JID(User=f"{THEM}:3", Server="s.whatsapp.net", RawAgent=0, Device=0, Integrator=0, IsEmpty=False),
    )
    await registered(theirs)
    host.clients.append(theirs)  # kept alive: a collected client would stop its Go twin
    try:
        yield runner, theirs, go, store
    finally:
        await ours.stop()
        await theirs.stop()
        nz.events_module.event_global_loop = None


def poll_info(chat: str, sender: str, poll_id: str, *, from_me: bool) -> Any:
    empty = nz.EMPTY_JID
    user, _, server = chat.partition("@")
    author, _, author_server = sender.partition("@")
    src = N.MessageSource(
        Chat=nz.build_jid(user, server),
        Sender=nz.build_jid(author, author_server),
        IsFromMe=from_me,
        IsGroup=False,
        SenderAlt=empty,
        RecipientAlt=empty,
        BroadcastListOwner=empty,
    )
    return N.MessageInfo(
        MessageSource=src,
        ID=poll_id,
        ServerID=0,
        Type="poll",
        Pushname="",
        Timestamp=0,
        Category="",
        Multicast=False,
        MediaType="",
        Edit="",
    )


async def test_a_contacts_vote_in_the_sessions_poll_is_decrypted_and_named(pair: Any) -> None:
    runner, theirs, go, store = pair
    poll_id, _, _ = await runner.send(
        Send(id=0, session_id="ses_poll", to=THEM_JID, content=Poll(question="Pizza?", options=["sim", "não"]))
    )
    secret = go.sent[-1][1].messageContextInfo.messageSecret
    store_secret(store, f"{THEM}:3@s.whatsapp.net", US_JID, US_JID, poll_id, secret)  # the contact received it
    vote = await theirs.build_poll_vote(
        poll_info(US_JID, US_JID, poll_id, from_me=False), ["não"]
    )  # whatsmeow encrypts
    assert vote.pollUpdateMessage.vote.encPayload  # ciphertext, not the names
    deliver_like_go(runner.client, message_ev(vote, source(jid(THEM), jid(THEM)), msg_id="3A0VOTE"))
    events = runner.host.events  # type: ignore[attr-defined]
    async with asyncio.timeout(10):
        while not events:
            await asyncio.sleep(0.01)
    (voted,) = events
    assert isinstance(voted, MessageIn) and voted.content == Vote(message_id=poll_id, options=["não"])


async def test_the_sessions_vote_in_a_contacts_poll_is_encrypted_for_them(pair: Any) -> None:
    runner, theirs, go, store = pair
    secret = os.urandom(32)
    creation = nz.E2E.PollCreationMessage(
        name="Hoje?", options=[nz.E2E.PollCreationMessage.Option(optionName=o) for o in ("a", "b", "c")]
    )
    poll = nz.WAMessage(
        pollCreationMessage=creation, messageContextInfo=nz.E2E.MessageContextInfo(messageSecret=secret)
    )
    store_secret(store, f"{US}:7@s.whatsapp.net", THEM_JID, THEM_JID, "3A0THEIRS", secret)  # as whatsmeow on receipt
    store_secret(store, f"{THEM}:3@s.whatsapp.net", US_JID, THEM_JID, "3A0THEIRS", secret)  # as when they sent it
    deliver_like_go(runner.client, message_ev(poll, source(jid(THEM), jid(THEM)), msg_id="3A0THEIRS"))
    async with asyncio.timeout(10):
        while await runner.polls.find("ses_poll", "3A0THEIRS") is None:
            await asyncio.sleep(0.01)
    target = TargetRef(message_id="3A0THEIRS", from_me=False, participant=THEM_JID)
    await runner.send(
        Send(
            id=0, session_id="ses_poll", to=THEM_JID, content=Vote(message_id="3A0THEIRS", options=["c"]), target=target
        )
    )
    to, vote = go.sent[-1]
    assert to == THEM_JID and vote.pollUpdateMessage.pollCreationMessageKey.ID == "3A0THEIRS"
    # The contact's whatsmeow decrypts what the session's whatsmeow encrypted.
    decrypted = await theirs.decrypt_poll_vote(message_ev(vote, source(jid(US), jid(US)), msg_id="3EB0VOTE"))
    import hashlib

    assert list(decrypted.selectedOptions) == [hashlib.sha256(b"c").digest()]
