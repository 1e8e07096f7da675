"""What a file is: its MIME type from its bytes (libmagic), and a picture's size (Pillow).

Both libraries come with neonize's dependencies. A client's declared type is only a hint: WhatsApp shows a
file according to what it really is, so the gateway trusts the bytes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FileFacts", "sniff"]

_OPAQUE = {"application/octet-stream", "text/plain", "inode/x-empty"}
HEAD_BYTES = 256 * 1024
"""How much of a file libmagic reads. Every format's signature is near its start; letting libmagic read a whole
large file costs about 14 MiB of memory per call (it buffers up to 7 MiB and converts it for text checks)."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    mimetype: str
    width: int | None = None
    height: int | None = None


def sniff(path: Path, declared: str | None = None) -> FileFacts:
    """The type of the file at ``path`` (blocking: run it in a thread). ``declared`` wins only when the bytes
    say nothing more specific than "binary" or "text"."""
    import magic  # python-magic, a dependency of neonize (libmagic)

    with path.open("rb") as source:
        head = source.read(HEAD_BYTES)
    detected = str(magic.from_buffer(head, mime=True) or "application/octet-stream") if head else "inode/x-empty"
    mimetype = declared if declared and detected in _OPAQUE else detected
    width = height = None
    if mimetype.startswith("image/"):
        with contextlib.suppress(Exception):
            from PIL import Image

            with Image.open(path) as image:
                width, height = image.size
    return FileFacts(mimetype, width, height)
