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


@dataclass(frozen=True, slots=True)
class FileFacts:
    mimetype: str
    width: int | None = None
    height: int | None = None


def sniff(path: Path, declared: str | None = None) -> FileFacts:
    """The type of the file at ``path`` (blocking: run it in a thread). ``declared`` wins only when the bytes
    say nothing more specific than "binary" or "text"."""
    import magic  # python-magic, a dependency of neonize (libmagic)

    detected = str(magic.from_file(str(path), mime=True) or "application/octet-stream")
    mimetype = declared if declared and detected in _OPAQUE else detected
    width = height = None
    if mimetype.startswith("image/"):
        with contextlib.suppress(Exception):
            from PIL import Image

            with Image.open(path) as image:
                width, height = image.size
    return FileFacts(mimetype, width, height)
