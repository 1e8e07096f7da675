"""The protocol fuzzer, in CI: frames from hypothesis strategies derived from the protocol's schemas, and
mutations of valid frames (byte flips, truncations, type swaps, deep nesting...), sent to a live gateway over a
real socket, before and after authentication.

Every answer must be a documented error code (never ``internal``) or a documented close code, and the log must
hold no ERROR line and no traceback. Runs are reproducible (``derandomize``: the same examples every time) and
bounded (``FUZZ_EXAMPLES``, a few seconds). A frame that finds something is saved to ``tests/fuzz_corpus/``,
and every frame there is replayed by :func:`test_the_corpus_replays_cleanly` (the review's crashes are there).
Run longer locally with ``ZAPGATE_FUZZ_EXAMPLES=5000``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import fast_settings
from .fuzz_support import (
    CLOSE_CODES,
    ERROR_CODES,
    Finding,
    FuzzClient,
    auth_frames,
    check_frame,
    command_frames,
    corpus,
    gateway_in_a_thread,
    mutated_frames,
    save_to_corpus,
)
from .support import RunningGateway

FUZZ_EXAMPLES = int(os.environ.get("ZAPGATE_FUZZ_EXAMPLES", "300"))
"""Examples per fuzz test (three tests): about 3 s each on an idle 2-core machine; CI keeps the default."""

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    # Failed authentications are what the pre-auth phase does all the time: no slow-down for them here.
    tuned = fast_settings(data_dir, auth_failure_delay_s=0.001, auth_failure_max_delay_s=0.001)
    with gateway_in_a_thread(tuned) as gateway:
        yield gateway


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    """Every record at INFO and above, from every thread, while the test runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, root = Keep(logging.INFO), logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO))
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def no_crash_in(records: list[logging.LogRecord]) -> None:
    loud = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not loud, [f"{r.levelname} {r.name}: {r.getMessage()[:300]}" for r in loud]


def token_of(gateway: RunningGateway) -> str:
    token: str = gateway.fuzz_token  # type: ignore[attr-defined]
    return token


def run_one(client: FuzzClient, data: bytes, as_text: bool, phase: str) -> tuple[list[dict[str, Any]], int | None]:
    try:
        return client.exchange(data, as_text)
    except Finding:
        save_to_corpus(data, as_text, phase)
        raise


def test_the_documented_codes_are_what_the_fuzzer_expects() -> None:
    assert {1007, 1009, 4400, 4401, 4429} <= CLOSE_CODES and "internal" not in ERROR_CODES
    assert {"invalid_json", "invalid_frame", "unknown_type", "invalid_request", "unauthorized"} <= ERROR_CODES


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "error", "code": "internal", "message": "boom"},
        {"type": "reply", "id": "1", "ok": False, "error": {"code": "internal", "message": "boom"}},
        {"type": "error", "code": "not_a_documented_code", "message": "?"},
    ],
)
def test_the_checker_flags_internal_and_undocumented_codes(frame: dict[str, Any]) -> None:
    with pytest.raises(Finding):
        check_frame(frame, b"x")
    check_frame({"type": "reply", "id": "1", "ok": False, "error": {"code": "invalid_json", "message": "."}}, b"x")


def test_commands_from_the_schemas(fuzzed: RunningGateway, log_records: list[logging.LogRecord]) -> None:
    client = FuzzClient(fuzzed.url, token_of(fuzzed))

    @FUZZ
    @given(frame=command_frames())
    def fuzz(frame: dict[str, Any]) -> None:
        run_one(client, json.dumps(frame).encode(), True, "authed")

    try:
        fuzz()
    finally:
        client.close()
    no_crash_in(log_records)


def test_mutated_commands(fuzzed: RunningGateway, log_records: list[logging.LogRecord]) -> None:
    client = FuzzClient(fuzzed.url, token_of(fuzzed))

    @FUZZ
    @given(mutated=mutated_frames(command_frames()))
    def fuzz(mutated: tuple[bytes, bool]) -> None:
        run_one(client, *mutated, "authed")

    try:
        fuzz()
    finally:
        client.close()
    no_crash_in(log_records)


def test_frames_before_authentication(fuzzed: RunningGateway, log_records: list[logging.LogRecord]) -> None:
    client = FuzzClient(fuzzed.url, None)
    before_auth = st.one_of(mutated_frames(auth_frames()), mutated_frames(command_frames()))

    @FUZZ
    @given(mutated=before_auth)
    def fuzz(mutated: tuple[bytes, bool]) -> None:
        answers, closed = run_one(client, *mutated, "preauth")
        assert closed is not None, "a connection stays open after a frame that is not a good auth frame"
        # Either an error frame then 4400/4401, or a close the WebSocket layer sends itself (1007, 1009).
        assert closed in {1007, 1009} or (answers and answers[0]["type"] == "error"), (closed, answers)

    try:
        fuzz()
    finally:
        client.close()
    no_crash_in(log_records)


CORPUS = corpus()


@pytest.mark.parametrize(("phase", "data", "as_text"), CORPUS, ids=[f"{p}-{d[:24]!r}" for p, d, _ in CORPUS])
def test_the_corpus_replays_cleanly(
    fuzzed: RunningGateway, log_records: list[logging.LogRecord], phase: str, data: bytes, as_text: bool
) -> None:
    client = FuzzClient(fuzzed.url, token_of(fuzzed) if phase == "authed" else None)
    try:
        client.exchange(data, as_text)
        if phase == "authed":  # the connection is still usable, unless the frame closed it (documented code)
            answers, closed = client.exchange(b'{"type":"ping","id":"after"}', True)
            assert closed is None and [(a["id"], a["ok"]) for a in answers] == [("after", True)], answers
    finally:
        client.close()
    no_crash_in(log_records)


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 8 and Path(__file__).with_name("fuzz_corpus").is_dir()
