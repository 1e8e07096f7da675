"""``zapgate pair``: start a session and link a phone to it, drawing each QR code as it rotates."""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time

from ..client import Client, EventGap, SessionDeleted, SessionInfo, SessionPairCode, SessionQr, SessionStatus
from ..errors import ConnectionClosed, ZapgateError
from .exit_codes import EXIT_OK, EXIT_TIMEOUT
from .output import Failure, say

__all__ = ["pair"]


async def pair(client: Client, args: argparse.Namespace) -> int:
    try:
        async with asyncio.timeout(args.timeout):
            return await _pair_until_connected(client, args.session, args.phone)
    except TimeoutError as exc:
        if isinstance(exc, ZapgateError):
            raise
        raise Failure(
            f"gave up after {args.timeout:g} s; the session may still be waiting for a phone "
            f"(run 'zapgate pair {args.session}' again, or 'zapgate stop {args.session}')",
            EXIT_TIMEOUT,
        ) from None


async def _pair_until_connected(client: Client, session: str, phone: str | None) -> int:
    info = await client.start_session(session, pair_phone=phone)
    if info.status == "connected":
        say(f"session {session} is already connected as {_phone(info)}")
        return EXIT_OK
    if info.paired:
        say(f"session {session} is linked to {_phone(info)}; waiting for it to connect ...", sys.stderr)
    elif info.status == "qr":
        # Someone started the pairing before us: show the code that is on screen now.
        await _show_current_code(client, session, phone)
    async for event in client.events():
        if isinstance(event, EventGap) or event.session != session:
            continue
        if isinstance(event, SessionQr):
            if phone is None:
                _draw_qr(event, simulator=client.engine == "simulator", url=client.url)
        elif isinstance(event, SessionPairCode):
            _show_pair_code(event, phone, simulator=client.engine == "simulator")
        elif isinstance(event, SessionStatus):
            done = _pair_status(session, event)
            if done is not None:
                return done
        elif isinstance(event, SessionDeleted):
            raise Failure(f"session {session} was deleted while pairing")
    raise ConnectionClosed("the client closed before the session connected")


def _pair_status(session: str, event: SessionStatus) -> int | None:
    data = event.data
    if data.status == "connected":
        who = f"+{data.me.phone}" if data.me else "a phone"
        say(f"session {session} connected as {who}")
        return EXIT_OK
    if data.status == "failed" and data.reason == "qr_timeout":
        raise Failure(
            f"no phone linked session {session} before the last code expired; run 'zapgate pair {session}' "
            "to get new codes",
            EXIT_TIMEOUT,
        )
    if data.status in {"failed", "logged_out", "stopped"}:
        raise Failure(f"session {session} is {data.status}" + (f" ({data.reason})" if data.reason else ""))
    return None


async def _show_current_code(client: Client, session: str, phone: str | None) -> None:
    """Find the QR (or pairing) code shown before we connected in the recent event log."""
    newest = client.last_seq or 0
    page = await client.fetch_events(max(0, newest - 1000), limit=1000)
    simulator = client.engine == "simulator"
    if phone is None:
        qrs = [e for e in page.events if isinstance(e, SessionQr) and e.session == session]
        if qrs:
            _draw_qr(qrs[-1], simulator=simulator, url=client.url)
            return
    else:
        codes = [e for e in page.events if isinstance(e, SessionPairCode) and e.session == session]
        if codes:
            _show_pair_code(codes[-1], phone, simulator=simulator)
            return
    if phone:
        raise Failure(
            f"session {session} is already showing QR codes, without a pairing code; run 'zapgate stop {session}' "
            "and then 'zapgate pair --phone' again"
        )
    say("waiting for the next QR code ...", sys.stderr)


def _draw_qr(event: SessionQr, *, simulator: bool, url: str) -> None:
    """Draw the code, clearing the screen first on a terminal; everything about it is printed under it."""
    import segno  # only 'pair' needs it

    data = event.data
    out = sys.stdout
    art = io.StringIO()
    symbol = segno.make_qr(data.qr, error="l")
    try:
        symbol.terminal(out=art, compact=True)
        art.getvalue().encode(out.encoding or "utf-8")
    except UnicodeEncodeError:  # a terminal without block characters: ANSI colours instead
        art = io.StringIO()
        symbol.terminal(out=art)
    if out.isatty():
        out.write("\x1b[2J\x1b[H")  # clear the screen: an expired code must not stay scannable
    out.write(art.getvalue())
    expires_in = max(0, round(data.expires_at - time.time()))
    say("Scan it with WhatsApp on the phone: Settings > Linked devices > Link a device.")
    say(f"code {data.attempt} of {data.max_attempts}, expires in {expires_in} s")
    if simulator:
        say(f"simulator: zapgate sim scan '{data.qr}' --phone NUMBER")
    say(_png_hint(url, event.session), sys.stderr)


def _show_pair_code(event: SessionPairCode, phone: str | None, *, simulator: bool) -> None:
    expires_in = max(0, round(event.data.expires_at - time.time()))
    say(f"pairing code: {event.data.code}")
    say(
        "On the phone: WhatsApp > Settings > Linked devices > Link a device > Link with phone number instead, "
        f"then type the code (valid for {expires_in} s)."
    )
    if simulator:
        say(f"simulator: zapgate sim scan {event.data.code} --phone '{phone}'")


def _png_hint(url: str, session: str) -> str:
    http = url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    if http.endswith("/v1/ws"):
        http = http[: -len("/v1/ws")]
    return (
        f'(or download it as an image: curl -H "Authorization: Bearer $ZAPGATE_TOKEN" '
        f"{http}/v1/sessions/{session}/qr.png -o qr.png)"
    )


def _phone(info: SessionInfo) -> str:
    return f"+{info.me.phone}" if info.me else "a phone"
