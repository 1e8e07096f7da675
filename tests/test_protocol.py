"""Wire protocol decoding: every command decodes, and every kind of bad frame gets a precise error."""

from __future__ import annotations

import json

import pytest

from zapgate import protocol
from zapgate.errors import InvalidFrame, InvalidJSON, InvalidRequest, ProtocolError, UnknownType
from zapgate.protocol import (
    COMMAND_TYPES,
    Auth,
    MessageSend,
    SessionStart,
    SimReceive,
    decode_client_frame,
    decode_server_frame,
    encode,
)


def test_every_command_type_is_known_and_listed() -> None:
    assert {
        "contact.resolve",
        "contact.check",
        "contact.info",
        "contact.block",
        "contact.unblock",
        "contact.blocklist",
        "sim.contact",
        "sim.profile",
        "session.start",
        "session.list",
        "session.get",
        "session.stop",
        "session.logout",
        "session.delete",
        "message.send",
        "message.read",
        "media.get",
        "media.retry",
        "events.fetch",
        "ping",
        "sim.scan",
        "sim.unlink",
        "sim.network",
        "sim.receive",
        "sim.restrict",
        "chat.presence",
        "presence.set",
        "presence.subscribe",
        "sim.media_fail",
        "subscribe",
        "tenant.create",
        "tenant.list",
        "tenant.update",
        "tenant.disable",
        "tenant.enable",
        "token.create",
        "token.list",
        "token.revoke",
        "audit.list",
        "chat.list",
        "chat.mark_read",
        "chat.archive",
        "chat.unarchive",
        "chat.pin",
        "chat.unpin",
        "chat.mute",
        "chat.unmute",
        "message.history",
        "webhook.create",
        "webhook.list",
        "webhook.get",
        "webhook.update",
        "webhook.delete",
        "webhook.rotate_secret",
        "webhook.test",
        "webhook.replay",
        "webhook.attempts",
        "webhook.dead_letters",
        "webhook.redeliver",
        "group.create",
        "group.list",
        "group.info",
        "group.participants",
        "group.invite_link",
        "group.join",
        "group.leave",
        "group.update",
    } == COMMAND_TYPES


def test_auth_frame_with_and_without_resume() -> None:
    assert decode_client_frame('{"type":"auth","token":"t"}') == Auth(token="t")
    assert decode_client_frame('{"type":"auth","token":"t","resume_from":7}') == Auth(token="t", resume_from=7)
    with_subscription = '{"type":"auth","token":"t","sessions":["s1"],"events":["message.*"]}'
    assert decode_client_frame(with_subscription) == Auth(token="t", sessions=["s1"], events=["message.*"])


def test_message_send_with_optional_fields() -> None:
    frame = decode_client_frame(
        json.dumps(
            {
                "type": "message.send",
                "id": "1",
                "session": "s",
                "to": "5511999990000",
                "text": "hi",
                "reply_to": "3EB0X",
                "idempotency_key": "k1",
            }
        )
    )
    assert frame == MessageSend(
        id="1", session="s", to="5511999990000", text="hi", reply_to="3EB0X", idempotency_key="k1"
    )


def test_sim_receive_uses_from_on_the_wire() -> None:
    frame = decode_client_frame('{"type":"sim.receive","id":"1","session":"s","from":"+1 555","text":"x"}')
    assert isinstance(frame, SimReceive) and frame.from_ == "+1 555"


@pytest.mark.parametrize(
    ("raw", "error", "request_id", "says"),
    [
        ("not json", InvalidJSON, None, "not valid JSON"),
        ('{"type":"ping","id":"1"', InvalidJSON, None, "not valid JSON"),
        ("[1,2]", InvalidFrame, None, "JSON object"),
        ('"ping"', InvalidFrame, None, "JSON object"),
        ('{"id":"7"}', InvalidFrame, "7", "no 'type'"),
        ('{"type":5,"id":"7"}', InvalidFrame, "7", "'type' must be a string"),
        ('{"type":"session.explode","id":"7"}', UnknownType, "7", "unknown frame type 'session.explode'"),
        ('{"type":"session.start","id":"7"}', InvalidRequest, "7", "missing required field `session`"),
        ('{"type":"session.start","id":"7","session":42}', InvalidRequest, "7", "Expected `str`, got `int`"),
        ('{"type":"session.start","id":"7","session":"bad name!"}', InvalidRequest, "7", "$.session"),
        ('{"type":"session.start","id":"7","session":"s","extra":1}', InvalidRequest, "7", "unknown field `extra`"),
        ('{"type":"session.start","session":"s"}', InvalidRequest, None, "missing required field `id`"),
        ('{"type":"message.send","id":"7","session":"s","to":"1","text":""}', InvalidRequest, "7", "$.text"),
        (
            '{"type":"message.read","id":"7","session":"s","chat":"1","message_ids":[]}',
            InvalidRequest,
            "7",
            "$.message_ids",
        ),
        ('{"type":"events.fetch","id":"7","after":-1}', InvalidRequest, "7", "$.after"),
        ('{"type":"ping","id":""}', InvalidRequest, None, "$.id"),
        # The typed decoder stops at the unknown type; the rest of the frame is still not JSON.
        ('{"type":"nope",}', InvalidJSON, None, "trailing comma"),
        ('{"type":"nope","id":"7",}', InvalidJSON, None, "not valid JSON"),
        # Deeper than the decoder recurses on every supported Python (msgspec stops near 1,000 levels on 3.11,
        # 1,500 on 3.12 and 10,000 on 3.13): an error, not a RecursionError.
        ('{"type":' + "[" * 20000 + "]" * 20000 + "}", InvalidJSON, None, "nested too deeply"),
        ('{"type":"ping","id":"7","x":' + "[" * 20000 + "]" * 20000 + "}", InvalidJSON, None, "nested too deeply"),
        ('{"type":"ping","id":' + '{"a":' * 12000 + "1" + "}" * 12001, InvalidJSON, None, "nested too deeply"),
        ("[" * 30000, InvalidFrame, None, "JSON object"),
        ('{"type":"sim.restrict","id":"7","session":"s","seconds":1,"reason":"x\\n"}', InvalidRequest, "7", "reason"),
    ],
)
def test_bad_frames_get_precise_errors(raw: str, error: type[ProtocolError], request_id: str | None, says: str) -> None:
    with pytest.raises(error) as caught:
        decode_client_frame(raw)
    assert caught.value.request_id == request_id
    assert says in caught.value.message
    assert caught.value.code == error.code


def test_session_names_follow_the_documented_pattern() -> None:
    for good in ["a", "main", "Bot-1", "shop.sp_01", "x" * 64]:
        assert decode_client_frame(json.dumps({"type": "session.get", "id": "1", "session": good}))
    for bad in ["", "-lead", ".lead", "with space", "x" * 65, "ação", "main\n", "main\r\n", "\nmain"]:
        with pytest.raises(InvalidRequest):
            decode_client_frame(json.dumps({"type": "session.get", "id": "1", "session": bad}))


def test_server_frames_round_trip() -> None:
    frame = protocol.Reply(id="1", ok=True, data={"a": 1})
    assert decode_server_frame(encode(frame)) == frame
    assert json.loads(encode(frame)) == {"type": "reply", "id": "1", "ok": True, "data": {"a": 1}}
    error = protocol.Reply(id="2", ok=False, error=protocol.ErrorBody("session_not_found", "no"))
    assert json.loads(encode(error)) == {
        "type": "reply",
        "id": "2",
        "ok": False,
        "error": {"code": "session_not_found", "message": "no"},
    }


def test_start_with_pair_phone() -> None:
    frame = decode_client_frame('{"type":"session.start","id":"1","session":"s","pair_phone":"+55 11 9"}')
    assert frame == SessionStart(id="1", session="s", pair_phone="+55 11 9")
