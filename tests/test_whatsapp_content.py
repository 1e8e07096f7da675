"""The real engine's translation of every kind of WhatsApp message, with real ``neonize.proto`` messages (no
network): nothing a person can see is dropped, and each kind keeps its fields."""

from __future__ import annotations

from typing import Any

import pytest

from zapgate.engines.whatsapp import nz, translate
from zapgate.engines.whatsapp.content import inbound_content, parse_vcard
from zapgate.protocol.content import (
    Audio,
    ContactCard,
    Contacts,
    Document,
    Edit,
    Image,
    LinkPreview,
    Location,
    Poll,
    Reaction,
    Revoke,
    Sticker,
    Text,
    Unsupported,
    Video,
)

from .test_whatsapp_translate import ALICE, message_ev, source

E = nz._m["e2e"]
M = nz.WAMessage
MEDIA = {
    "mimetype": "image/jpeg",
    "fileLength": 2048,
    "fileSHA256": b"\x01" * 32,
    "fileEncSHA256": b"\x02" * 32,
    "mediaKey": b"\x03" * 32,
    "directPath": "/v/t62.7118-24/123",
}


def test_text_with_a_link_preview_a_quote_mentions_and_the_forwarded_flag() -> None:
    context = E.ContextInfo(
        stanzaID="3EB0QUOTED", mentionedJID=["5521988880002@s.whatsapp.net"], isForwarded=True, forwardingScore=2
    )
    message = M(
        extendedTextMessage=E.ExtendedTextMessage(
            text="veja https://zap.example", matchedText="https://zap.example", title="Zap", contextInfo=context
        )
    )
    got = inbound_content(message)
    assert got is not None
    assert got.content == Text(
        text="veja https://zap.example", preview=LinkPreview(url="https://zap.example", title="Zap")
    )
    assert (got.reply_to, got.mentions, got.forwarded) == ("3EB0QUOTED", ["5521988880002@s.whatsapp.net"], True)


def test_an_image_in_a_view_once_wrapper() -> None:
    image = E.ImageMessage(caption="olha", width=640, height=480, **MEDIA)
    got = inbound_content(M(viewOnceMessageV2=E.FutureProofMessage(message=M(imageMessage=image))))
    assert got is not None and got.view_once
    assert isinstance(got.content, Image)
    assert (got.content.caption, got.content.width, got.content.height) == ("olha", 640, 480)
    media = got.content.media
    assert (media.mimetype, media.size, media.sha256, media.status) == ("image/jpeg", 2048, "01" * 32, "pending")
    assert got.media_ref is not None and got.media_ref["direct_path"] == "/v/t62.7118-24/123"
    assert got.media_ref["media_type"] == "image" and got.media_ref["file_length"] == 2048


def test_video_voice_note_document_and_sticker() -> None:
    video = inbound_content(M(videoMessage=E.VideoMessage(seconds=7, gifPlayback=True, **MEDIA)))
    assert video is not None and isinstance(video.content, Video) and video.content.gif and video.content.seconds == 7
    voice = inbound_content(M(audioMessage=E.AudioMessage(PTT=True, seconds=12, waveform=b"\x00\x10\x20", **MEDIA)))
    assert voice is not None and isinstance(voice.content, Audio)
    assert voice.content.voice and voice.content.seconds == 12 and voice.content.waveform == "ABAg"
    document = E.DocumentMessage(fileName="nota.pdf", caption="a nota", pageCount=3, **MEDIA)
    wrapped = M(documentWithCaptionMessage=E.FutureProofMessage(message=M(documentMessage=document)))
    doc = inbound_content(wrapped)
    assert doc is not None and isinstance(doc.content, Document)
    assert (doc.content.filename, doc.content.caption, doc.content.pages) == ("nota.pdf", "a nota", 3)
    assert doc.content.media.filename == "nota.pdf"
    sticker = inbound_content(M(stickerMessage=E.StickerMessage(isAnimated=True, **MEDIA)))
    assert sticker is not None and isinstance(sticker.content, Sticker) and sticker.content.animated


def test_locations_static_and_live() -> None:
    pin = E.LocationMessage(degreesLatitude=-23.56, degreesLongitude=-46.65, name="MASP", address="Paulista")
    got = inbound_content(M(locationMessage=pin))
    assert got is not None
    assert got.content == Location(latitude=-23.56, longitude=-46.65, name="MASP", address="Paulista")
    live = inbound_content(M(liveLocationMessage=E.LiveLocationMessage(degreesLatitude=1.0, degreesLongitude=2.0)))
    assert live is not None and isinstance(live.content, Location) and live.content.live


VCARD = (
    "BEGIN:VCARD\nVERSION:3.0\nFN:Bob\nitem1.TEL;waid=15550009999:+1 555-000-9999\nitem1.X-ABLabel:Ponsel\nEND:VCARD"
)


def test_contact_cards_are_parsed() -> None:
    assert parse_vcard(VCARD) == ContactCard(vcard=VCARD, name="Bob", phones=["+15550009999"])
    one = inbound_content(M(contactMessage=E.ContactMessage(displayName="Bob", vcard=VCARD)))
    assert one is not None and one.content == Contacts(contacts=[parse_vcard(VCARD)])
    many = E.ContactsArrayMessage(contacts=[E.ContactMessage(vcard=VCARD), E.ContactMessage(vcard=VCARD)])
    got = inbound_content(M(contactsArrayMessage=many))
    assert got is not None and isinstance(got.content, Contacts) and len(got.content.contacts) == 2


@pytest.mark.parametrize("field", ["pollCreationMessage", "pollCreationMessageV3"])
def test_polls(field: str) -> None:
    options = [E.PollCreationMessage.Option(optionName=name) for name in ("sim", "não")]
    poll = E.PollCreationMessage(name="Pizza?", options=options, selectableOptionsCount=1)
    got = inbound_content(M(**{field: poll}))
    assert got is not None and got.content == Poll(question="Pizza?", options=["sim", "não"], selectable=1)


def test_reaction_revoke_and_edit() -> None:
    key = {"ID": "3EB0TARGET", "remoteJID": "5511999990000@s.whatsapp.net", "fromMe": True}
    reaction = inbound_content(M(reactionMessage=E.ReactionMessage(key=key, text="👍")))
    assert reaction is not None and reaction.content == Reaction(message_id="3EB0TARGET", emoji="👍")
    revoke = inbound_content(M(protocolMessage=E.ProtocolMessage(key=key, type=0)))
    assert revoke is not None and revoke.content == Revoke(message_id="3EB0TARGET")
    edit = E.ProtocolMessage(key=key, type=14, editedMessage=M(conversation="corrigido"))
    wrapped = M(editedMessage=E.FutureProofMessage(message=M(protocolMessage=edit)))
    got = inbound_content(wrapped)
    assert got is not None and got.content == Edit(message_id="3EB0TARGET", text="corrigido")


def test_disappearing_messages_are_flagged() -> None:
    got = inbound_content(M(ephemeralMessage=E.FutureProofMessage(message=M(conversation="some"))))
    assert got is not None and got.ephemeral and got.content == Text(text="some")


def test_unknown_kinds_arrive_as_unsupported_with_their_text() -> None:
    buttons = E.ButtonsMessage(contentText="Escolha uma opção")
    got = inbound_content(M(buttonsMessage=buttons))
    assert got is not None and got.content == Unsupported(type="buttonsMessage", text="Escolha uma opção")
    event = inbound_content(M(eventMessage={"name": "Churrasco"}))
    assert event is not None and event.content == Unsupported(type="eventMessage", text="Churrasco")
    # Text found inside nested messages, and none found in a vote (its fields are keys and encrypted bytes).
    hydrated = {"hydratedContentText": "x", "hydratedTitleText": "y"}
    template = inbound_content(M(templateMessage={"hydratedTemplate": hydrated}))
    assert template is not None and template.content == Unsupported(type="templateMessage")
    nested = inbound_content(M(listMessage={"title": "Cardápio", "sections": [{"title": "Pizzas"}]}))
    assert nested is not None and nested.content == Unsupported(type="listMessage", text="Cardápio")
    vote = inbound_content(M(pollUpdateMessage={"pollCreationMessageKey": {"ID": "3A0P"}, "vote": {"encIV": b"i"}}))
    assert vote is not None and vote.content == Unsupported(type="pollUpdateMessage")


@pytest.mark.parametrize(
    "message",
    [
        M(senderKeyDistributionMessage={"groupID": "x"}),
        M(protocolMessage=E.ProtocolMessage(type=5)),  # app-state sync key share: plumbing
    ],
)
def test_protocol_plumbing_yields_nothing(message: Any) -> None:
    assert inbound_content(message) is None


def test_a_status_post_is_flagged_as_status() -> None:
    status = nz.build_jid("status", "broadcast")
    event = message_ev(M(conversation="bom dia"), source(status, ALICE))
    got = translate.message_in(event)
    assert got is not None and got.status and got.chat == "status@broadcast"
