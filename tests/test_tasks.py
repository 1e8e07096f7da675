"""The task runner's set-up: a .venv counts as set up only for the Python it was made with."""

from __future__ import annotations

import importlib.util
import platform
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tasks() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("zapgate_tasks_under_test", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    return tasks


def _fake_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made_with: str | None) -> types.ModuleType:
    """tasks.py pointed at a copy of this checkout's pyproject.toml and lock, with a .venv stamped as set up and
    made with ``made_with`` (no pyvenv.cfg when None)."""
    tasks = _tasks()
    for name in ("pyproject.toml", "requirements.lock"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    venv = tmp_path / ".venv"
    venv.mkdir()
    if made_with is not None:
        (venv / "pyvenv.cfg").write_text(
            f"home = /opt/python/bin\ninclude-system-site-packages = false\nversion = {made_with}\n"
        )
    monkeypatch.setattr(tasks, "ROOT", tmp_path)
    monkeypatch.setattr(tasks, "VENV", venv)
    monkeypatch.setattr(tasks, "LOCK", tmp_path / "requirements.lock")
    monkeypatch.setattr(tasks, "STAMP", venv / ".setup-stamp")
    tasks.STAMP.write_text(tasks._wanted_stamp())
    return tasks


def test_a_venv_made_with_this_python_and_stamped_is_set_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = _fake_checkout(tmp_path, monkeypatch, platform.python_version())
    assert tasks.venv_python(tasks.VENV) == platform.python_version()
    assert tasks.is_set_up()


@pytest.mark.parametrize("made_with", ["3.10.4", None])
def test_a_venv_made_with_another_python_is_not_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made_with: str | None
) -> None:
    """`python3.13 tasks.py test` on a checkout whose .venv came from 3.11 rebuilds it instead of running 3.11."""
    tasks = _fake_checkout(tmp_path, monkeypatch, made_with)
    assert tasks.venv_python(tasks.VENV) == made_with
    assert not tasks.is_set_up()


def test_a_changed_lock_is_not_set_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = _fake_checkout(tmp_path, monkeypatch, platform.python_version())
    with tasks.LOCK.open("a") as lock:
        lock.write("six==1.16.0\n")
    assert not tasks.is_set_up()
