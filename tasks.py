#!/usr/bin/env python3
"""zapgate's task runner: the only entry point a new machine needs besides Python 3.11+.

    python3 tasks.py serve [zapgate serve options]   set up .venv, then run the gateway
    python3 tasks.py test [pytest options]           set up .venv, then lint, type-check and run every test
    python3 tasks.py bench [--quick]                 set up .venv, then run the benchmarks (writes docs/performance.md)
    python3 tasks.py zapgate ARGS...                 set up .venv, then run the zapgate CLI
    python3 tasks.py docs                            regenerate the generated parts of docs/ (settings table)
    python3 tasks.py screenshots                     retake the dashboard's screenshots in docs/img (needs chromium)
    python3 tasks.py lock                            re-resolve every dependency and rewrite requirements.lock

Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml or requirements.lock changes,
or when another Python runs tasks.py (``python3.13 tasks.py test`` makes .venv with 3.13).
Every package comes at the exact version pinned in requirements.lock, so a release upstream never changes what
a clean checkout installs; ``lock`` is the deliberate step that moves those pins (see docs/development.md).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".setup-stamp"
LOCK = ROOT / "requirements.lock"
EXTRAS = "dev"


def _run(*args: str | Path, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(a) for a in args], cwd=ROOT, env=env)


def _exec(*args: str | Path) -> None:
    """Replace this process by ``args``: signals (SIGTERM from a supervisor, Ctrl+C) reach the program itself."""
    argv = [str(a) for a in args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(ROOT)
    if os.name == "nt":  # no exec on Windows: run it and pass its exit code on
        sys.exit(subprocess.call(argv))
    os.execv(argv[0], argv)  # noqa: S606 - the program is ours, in .venv


def _make_venv(path: Path, *, clear: bool = False) -> None:
    try:
        venv.create(path, with_pip=True, clear=clear)
    except Exception as exc:  # Debian ships venv without ensurepip unless python3-venv is installed
        sys.exit(f"could not create {path} ({exc}); on Debian/Ubuntu install python3-venv first")


def _pip(python: Path) -> list[str | Path]:
    return [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def _wanted_stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes()).hexdigest()


def venv_python(venv_dir: Path) -> str | None:
    """The version of the Python a virtual environment was made with (from its pyvenv.cfg), or None."""
    try:
        lines = (venv_dir / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "version":
            return value.strip()
    return None


def is_set_up() -> bool:
    """True when .venv was made with this Python and matches pyproject.toml and requirements.lock: the tasks
    start without installing."""
    return (
        LOCK.exists()
        and STAMP.exists()
        and STAMP.read_text() == _wanted_stamp()
        and venv_python(VENV) == platform.python_version()
    )


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"zapgate needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not LOCK.exists():
        sys.exit("requirements.lock is missing; run 'python3 tasks.py lock' to create it")
    if is_set_up():
        return
    wanted = _wanted_stamp()
    made_with, running = venv_python(VENV), platform.python_version()
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        _make_venv(VENV, clear=True)
    elif made_with != running:  # `python3.13 tasks.py ...` after a .venv of 3.11: the tasks run on the Python asked
        print(f"rebuilding .venv with Python {running} (it was made with Python {made_with}) ...", flush=True)
        _make_venv(VENV, clear=True)
    print("installing zapgate and its locked dependencies into .venv ...", flush=True)
    pip = _pip(BIN / "python")
    # The lock is a constraints file: it pins every package, including pip itself, without adding any.
    if _run(*pip, "-c", LOCK, "pip") != 0 or _run(*pip, "-c", LOCK, "-e", f".[{EXTRAS}]") != 0:
        sys.exit("pip install failed")
    STAMP.write_text(wanted)


def lock(args: list[str]) -> int:
    """Resolve the newest releases allowed by pyproject.toml in a scratch venv and pin them all."""
    with tempfile.TemporaryDirectory(prefix="zapgate-lock-") as scratch:
        env_dir = Path(scratch) / "venv"
        _make_venv(env_dir)
        python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
        pip = _pip(python)
        if _run(*pip, "--upgrade", "pip") != 0 or _run(*pip, f".[{EXTRAS}]") != 0:
            print("pip install failed; requirements.lock is unchanged", file=sys.stderr)
            return 1
        frozen = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--all", "--exclude", "zapgate", "--exclude", "setuptools"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    pins = sorted((line for line in frozen.splitlines() if "==" in line), key=str.lower)
    header = (
        "# Every package zapgate installs, at the exact version CI tested. Generated by 'python3 tasks.py lock';\n"
        "# do not edit by hand. tasks.py installs with this file as pip constraints (docs/development.md).\n"
    )
    LOCK.write_text(header + "\n".join(pins) + "\n")
    print(f"wrote {LOCK.name}: {len(pins)} packages", file=sys.stderr)
    if STAMP.exists():
        STAMP.unlink()
    return 0


def serve(args: list[str]) -> int:
    _exec(BIN / "zapgate", "serve", *args)
    return 0


def test(args: list[str]) -> int:
    steps = [
        ("ruff", [BIN / "ruff", "check", "src", "tests", "bench", "tasks.py"]),
        ("mypy", [BIN / "mypy"]),
        ("pytest", [BIN / "python", "-m", "pytest", *args]),
    ]
    for name, cmd in steps:
        print(f"== {name}", flush=True)
        code = _run(*cmd)
        if code != 0:
            print(f"== {name} failed (exit {code})", flush=True)
            return code
    return 0


def bench(args: list[str]) -> int:
    _exec(BIN / "python", ROOT / "bench" / "run.py", *args)
    return 0


def docs(args: list[str]) -> int:
    """Rewrite the parts of docs/ that are generated from the code (tests/test_docs.py checks them)."""
    return _run(BIN / "python", "-m", "zapgate.docgen", *args)


def screenshots(args: list[str]) -> int:
    """Retake docs/img/dashboard-*.png with Debian's Chromium (tests/screenshots.py)."""
    _exec(BIN / "python", "-m", "tests.screenshots", *args)
    return 0


def zapgate(args: list[str]) -> int:
    _exec(BIN / "zapgate", *args)
    return 0


TASKS = {"serve": serve, "test": test, "bench": bench, "docs": docs, "screenshots": screenshots, "zapgate": zapgate}


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "lock":
        sys.exit(lock(sys.argv[2:]))
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        sys.exit(__doc__)
    setup()
    sys.exit(TASKS[sys.argv[1]](sys.argv[2:]))


if __name__ == "__main__":
    main()
