#!/usr/bin/env python3
"""zapgate's task runner: the only entry point a new machine needs besides Python 3.11+.

    python3 tasks.py serve [zapgate serve options]   set up .venv, then run the gateway
    python3 tasks.py test [pytest options]           set up .venv, then lint, type-check and run every test
    python3 tasks.py bench [--quick]                 set up .venv, then run the benchmarks (writes docs/performance.md)
    python3 tasks.py zapgate ARGS...                 set up .venv, then run the zapgate CLI

Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".setup-stamp"


def _run(*args: str | Path, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(a) for a in args], cwd=ROOT, env=env)


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"zapgate needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        try:
            venv.create(VENV, with_pip=True)
        except Exception as exc:  # Debian ships venv without ensurepip unless python3-venv is installed
            sys.exit(f"could not create .venv ({exc}); on Debian/Ubuntu install python3-venv first")
    print("installing zapgate and its dependencies into .venv ...", flush=True)
    pip = [BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if _run(*pip, "--upgrade", "pip") != 0 or _run(*pip, "-e", ".[dev]") != 0:
        sys.exit("pip install failed")
    STAMP.write_text(wanted)


def serve(args: list[str]) -> int:
    return _run(BIN / "zapgate", "serve", *args)


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
    return _run(BIN / "python", "bench/run.py", *args)


def zapgate(args: list[str]) -> int:
    return _run(BIN / "zapgate", *args)


TASKS = {"serve": serve, "test": test, "bench": bench, "zapgate": zapgate}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        sys.exit(__doc__)
    setup()
    sys.exit(TASKS[sys.argv[1]](sys.argv[2:]))


if __name__ == "__main__":
    main()
