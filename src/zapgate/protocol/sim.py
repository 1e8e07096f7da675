"""Commands of the simulator engine only: what a phone or WhatsApp itself would do."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Command, Empty, MessageId, Recipient, Scope, SessionName, command
from .content import Content
from .messages import Text
from .sessions import Me

__all__ = [
    "SimContact",
    "SimContactResult",
    "SimMediaFail",
    "SimMediaFailResult",
    "SimNetwork",
    "SimProfile",
    "SimReceive",
    "SimReceiveResult",
    "SimRestrict",
    "SimRestrictResult",
    "SimScan",
    "SimScanResult",
    "SimUnlink",
]


class SimContactResult(msgspec.Struct, kw_only=True):
    phone: str
    jid: str
    """The account's phone-number JID."""
    lid: str
    """The account's hidden-user id (``…@lid``)."""
    hide_phone: bool
    refuse_group_adds: bool


class SimScanResult(msgspec.Struct, kw_only=True):
    me: Me


class SimReceiveResult(msgspec.Struct, kw_only=True):
    message_id: str


class SimRestrictResult(msgspec.Struct, kw_only=True):
    until: float


class SimMediaFailResult(msgspec.Struct, kw_only=True):
    failing: int
    """How many of the session's next downloads will fail."""


@command(reply=SimScanResult, scope=Scope.TENANT, http=("POST", "/v1/sim/scan"), simulator_only=True)
class SimScan(Command, tag="sim.scan"):
    """A simulated phone with number ``phone`` scans ``qr`` (or types a pairing code)."""

    qr: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    phone: Recipient


@command(reply=Empty, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/sim/unlink"), simulator_only=True)
class SimUnlink(Command, tag="sim.unlink"):
    """The session's phone removes it from *Linked devices* (→ ``logged_out``)."""

    session: SessionName


@command(reply=Empty, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/sim/network"), simulator_only=True)
class SimNetwork(Command, tag="sim.network"):
    """Drop (``online: false``) or restore the session's network."""

    session: SessionName
    online: bool


@command(
    reply=SimReceiveResult, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/sim/receive"), simulator_only=True
)
class SimReceive(Command, tag="sim.receive"):
    """A simulated contact ``from`` sends a message to the session's number: ``content`` of any kind (a
    reaction, an edit of one of its own messages, a vote…) or ``text``."""

    session: SessionName
    from_: Recipient = msgspec.field(name="from")
    content: Content | None = None
    text: Text | None = None
    reply_to: MessageId | None = None


@command(
    reply=SimRestrictResult,
    scope=Scope.TENANT,
    http=("POST", "/v1/sessions/{session}/sim/restrict"),
    simulator_only=True,
)
class SimRestrict(Command, tag="sim.restrict"):
    """WhatsApp restricts the session's sending for ``seconds`` (like a temporary ban)."""

    session: SessionName
    seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)]
    reason: Annotated[str, msgspec.Meta(pattern=r"\A[a-z_]{1,40}\Z")] = "send_restricted"


@command(
    reply=SimMediaFailResult,
    scope=Scope.TENANT,
    http=("POST", "/v1/sessions/{session}/sim/media-fail"),
    simulator_only=True,
)
class SimMediaFail(Command, tag="sim.media_fail"):
    """The session's next ``times`` downloads of received files fail: with ``cdn_timeout`` (the gateway retries)
    or ``media_expired`` (the file is gone from WhatsApp's servers: no automatic retry). 0 clears it."""

    session: SessionName
    times: Annotated[int, msgspec.Meta(ge=0, le=1000)]
    reason: Literal["cdn_timeout", "media_expired"] = "cdn_timeout"


@command(reply=SimContactResult, scope=Scope.TENANT, http=("POST", "/v1/sim/contacts"), simulator_only=True)
class SimContact(Command, tag="sim.contact"):
    """Create a simulated account (if it does not exist) and set its privacy: ``hide_phone`` makes others see it
    by its LID alone (WhatsApp's phone-number privacy), ``refuse_group_adds`` makes WhatsApp refuse to add it to
    groups (``not_authorized``). An omitted setting is kept. Answers the account's addresses."""

    phone: Recipient
    hide_phone: bool | None = None
    refuse_group_adds: bool | None = None


@command(reply=Empty, scope=Scope.TENANT, http=("POST", "/v1/sim/profile"), simulator_only=True)
class SimProfile(Command, tag="sim.profile"):
    """The owner of ``phone`` (a simulated account; created if new) changes its profile: ``about``, a verified
    ``business_name`` (``""`` makes it a plain account), a new ``picture`` (false: none), and ``hide_profile``
    (privacy "nobody" for about and picture)."""

    phone: Recipient
    about: Annotated[str, msgspec.Meta(max_length=139)] | None = None
    business_name: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    picture: bool | None = None
    hide_profile: bool | None = None
