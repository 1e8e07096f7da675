"""Pure core: state machine, QR schedule, recipients, pacing (fake clock), backoff and settings."""

from __future__ import annotations

import random

import pytest

from zapgate.backoff import backoff_delays, full_jitter
from zapgate.config import ConfigError, Settings
from zapgate.errors import InvalidRecipient
from zapgate.jid import Jid, parse_phone, parse_recipient
from zapgate.sessions.pacing import DAY, Pacer, PacingPolicy
from zapgate.sessions.qr import QrSchedule
from zapgate.sessions.state import TRANSITIONS, InvalidTransition, SessionState, Status

# -- state machine


def test_seed_path_through_the_state_machine() -> None:
    state = SessionState()
    for status in [Status.STARTING, Status.QR, Status.CONNECTED, Status.DISCONNECTED, Status.CONNECTED, Status.STOPPED]:
        assert state.transition(status)
    assert state.status is Status.STOPPED


def test_forbidden_transitions_raise() -> None:
    state = SessionState()
    with pytest.raises(InvalidTransition):
        state.transition(Status.CONNECTED)
    state.transition(Status.STARTING)
    state.transition(Status.QR)
    with pytest.raises(InvalidTransition):
        state.transition(Status.LOGGED_OUT)  # a pairing in progress cannot be "logged out"


def test_repeating_the_same_status_and_reason_is_not_a_change() -> None:
    state = SessionState()
    state.transition(Status.STARTING)
    state.transition(Status.DISCONNECTED, "network")
    assert not state.transition(Status.DISCONNECTED, "network")
    assert state.transition(Status.DISCONNECTED, "keepalive_timeout")


def test_every_status_can_be_stopped_or_restarted() -> None:
    assert set(TRANSITIONS) == set(Status)  # the graph covers every status
    for status, targets in TRANSITIONS.items():
        if status is not Status.STOPPED:
            assert Status.STOPPED in targets, status  # session.stop works from anywhere
        if not SessionState(status).running:
            assert Status.STARTING in targets, status  # session.start works from every resting status


# -- QR schedule


def test_whatsapp_qr_schedule() -> None:
    schedule = QrSchedule(started_at=1000.0)
    assert schedule.max_attempts == 6
    assert schedule.slot(1).expires_at == 1060.0
    assert schedule.slot(2).issued_at == 1060.0 and schedule.slot(2).expires_at == 1080.0
    assert schedule.ends_at == 1160.0
    assert schedule.current(999.0) is None
    assert schedule.current(1059.9).attempt == 1  # type: ignore[union-attr]
    assert schedule.current(1060.0).attempt == 2  # type: ignore[union-attr]
    assert schedule.current(1159.9).attempt == 6  # type: ignore[union-attr]
    assert schedule.current(1160.0) is None
    with pytest.raises(ValueError):
        schedule.slot(7)


def test_custom_qr_schedule() -> None:
    schedule = QrSchedule(0.0, (1.0, 0.5))
    assert [schedule.slot(n).expires_at for n in (1, 2)] == [1.0, 1.5]


# -- recipients


@pytest.mark.parametrize(
    ("raw", "jid"),
    [
        ("+55 11 99999-0000", "5511999990000@s.whatsapp.net"),
        ("5511999990000", "5511999990000@s.whatsapp.net"),
        ("(55) 11.99999-0000", "5511999990000@s.whatsapp.net"),
        ("+1 555 000 0000", "15550000000@s.whatsapp.net"),
        ("5511999990000@s.whatsapp.net", "5511999990000@s.whatsapp.net"),
        ("5511999990000@c.us", "5511999990000@s.whatsapp.net"),
        ("120363025246125486@g.us", "120363025246125486@g.us"),
        ("5511999990000-1600000000@g.us", "5511999990000-1600000000@g.us"),
        ("123456789012345@lid", "123456789012345@lid"),
    ],
)
def test_recipients_accepted(raw: str, jid: str) -> None:
    assert str(parse_recipient(raw)) == jid


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abc",
        "011 99999 0000",
        "+55 11",
        "1234567890123456",
        "55119@x.net",
        "abc@s.whatsapp.net",
        "5511999990000@",
        "@s.whatsapp.net",
        "+55 11 99999-0000 ext 2",
    ],
)
def test_recipients_refused(raw: str) -> None:
    with pytest.raises(InvalidRecipient):
        parse_recipient(raw)


def test_parse_jid_drops_device_part() -> None:
    assert Jid.parse("5511999990000:7@s.whatsapp.net") == Jid("5511999990000")
    assert parse_phone("+55 11 99999-0000") == "5511999990000"


# -- pacing with a fake clock


def test_pacing_spaces_sends_per_session_and_per_chat() -> None:
    pacer = Pacer(PacingPolicy(interval=1.0, jitter=0.0, recipient_interval=3.0), rng=random.Random(1))
    assert pacer.ready_at("a", new_contact=False, now=100.0) == 100.0
    pacer.record_send("a", new_contact=False, now=100.0)
    assert pacer.ready_at("b", new_contact=False, now=100.0) == 101.0  # session interval
    assert pacer.ready_at("a", new_contact=False, now=100.0) == 103.0  # recipient interval
    pacer.record_send("b", new_contact=False, now=101.0)
    assert pacer.ready_at("a", new_contact=False, now=101.0) == 103.0


def test_pacing_jitter_stays_within_bounds() -> None:
    pacer = Pacer(PacingPolicy(interval=1.0, jitter=2.0, recipient_interval=0.0), rng=random.Random(7))
    now = 0.0
    gaps = []
    for _ in range(200):
        ready = pacer.ready_at("x", new_contact=False, now=now)
        gaps.append(ready - now)
        pacer.record_send("x", new_contact=False, now=ready)
        now = ready
    later = gaps[1:]
    assert all(1.0 <= g <= 3.0 for g in later)
    assert max(later) - min(later) > 1.0  # it really is random


def test_daily_cap_on_first_messages_to_new_contacts() -> None:
    pacer = Pacer(PacingPolicy(interval=0, jitter=0, recipient_interval=0, new_contacts_per_day=2))
    pacer.record_send("a", new_contact=True, now=10.0)
    pacer.record_send("b", new_contact=True, now=20.0)
    assert pacer.ready_at("c", new_contact=True, now=30.0) == 10.0 + DAY
    assert pacer.ready_at("a", new_contact=False, now=30.0) == 30.0  # known contacts are not capped
    assert pacer.new_contacts_in_window(30.0) == 2
    assert pacer.ready_at("c", new_contact=True, now=10.0 + DAY + 1) == 10.0 + DAY + 1
    assert pacer.new_contacts_in_window(10.0 + DAY + 1) == 1


def test_cap_counts_survive_a_restart() -> None:
    pacer = Pacer(PacingPolicy(new_contacts_per_day=1), new_contact_times=[50.0])
    assert pacer.ready_at("z", new_contact=True, now=60.0) == 50.0 + DAY


def test_pause_holds_every_send_even_with_pacing_disabled() -> None:
    pacer = Pacer(PacingPolicy(enabled=False))
    pacer.pause(500.0, "temporary_ban")
    assert pacer.ready_at("a", new_contact=False, now=100.0) == 500.0
    assert pacer.paused_reason == "temporary_ban"
    assert pacer.ready_at("a", new_contact=False, now=600.0) == 600.0
    assert pacer.paused_until is None


# -- backoff


def test_full_jitter_is_capped_and_grows() -> None:
    rng = random.Random(3)
    for attempt in range(1, 40):
        delay = full_jitter(attempt, base=1.0, cap=60.0, rng=rng)
        assert 0 <= delay <= min(60.0, 2 ** (attempt - 1))
    ceilings = [max(full_jitter(a, base=1.0, cap=60.0, rng=rng) for _ in range(200)) for a in (1, 4, 10)]
    assert ceilings[0] <= 1.0 < ceilings[1] <= 8.0 < ceilings[2] <= 60.0
    with pytest.raises(ValueError):
        full_jitter(0, base=1.0, cap=2.0)


def test_backoff_delays_stop_after_attempts() -> None:
    assert len(list(backoff_delays(attempts=5, rng=random.Random(0)))) == 5


# -- settings


def test_settings_from_environment() -> None:
    s = Settings.load(
        {
            "ZAPGATE_PORT": "9000",
            "ZAPGATE_SIM_QR_SCHEDULE": "5, 2,2",
            "ZAPGATE_PACING": "off",
            "ZAPGATE_ENGINE": "simulator",
            "ZAPGATE_TOKEN": "client-side, ignored",
        }
    )
    assert (s.port, s.sim_qr_schedule, s.pacing, s.engine) == (9000, (5.0, 2.0, 2.0), False, "simulator")
    assert Settings.load({"ZAPGATE_PORT": "9000"}, port=9001).port == 9001


def test_secure_defaults() -> None:
    s = Settings()
    assert s.host == "127.0.0.1" and s.port == 8787 and s.max_frame_bytes == 65536 and s.pacing


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ZAPGATE_PROT": "1"}, "unknown setting ZAPGATE_PROT"),
        ({"ZAPGATE_PORT": "http"}, "ZAPGATE_PORT='http' is not a valid int"),
        ({"ZAPGATE_PORT": "70000"}, "port must be between"),
        ({"ZAPGATE_ENGINE": "baileys"}, "engine must be one of"),
        ({"ZAPGATE_PACING": "maybe"}, "not a valid bool"),
        ({"ZAPGATE_SIM_QR_SCHEDULE": "0"}, "positive lifetime"),
    ],
)
def test_invalid_settings_fail_with_the_variable_named(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(env)
    assert says in str(caught.value)
