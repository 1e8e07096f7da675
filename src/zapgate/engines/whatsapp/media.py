"""Media files in an engine worker: reading a stored file to send it, uploading it, downloading received ones.

No ffmpeg (it is not installed in many deployments, and neonize's ``send_audio``/``send_video``/``send_sticker``
fail without it): the worker builds media messages itself (:mod:`.compose`) from what Python can learn alone:

- **images**: width, height and a small JPEG thumbnail (Pillow, a dependency of neonize);
- **voice notes and audio**: the duration of an OGG/Opus file, read from its last page; other formats are sent
  as they are, with the duration the client gave (if any). No waveform is computed (it needs decoding);
- **stickers**: WebP files as they are; a PNG or JPEG is converted to a 512x512 WebP with Pillow. Animated
  stickers must already be WebP;
- **videos and documents**: sent as they are. A video has no thumbnail (it needs ffmpeg): phones show a grey
  frame until it is downloaded, and the duration shown is the one the client gave.

The gateway hands over the stored file's path (the data directory is shared); its bytes never cross the
channel to the worker. Downloads use the keys WhatsApp sent with the message (``MessageIn.media_ref``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import struct
import warnings
from pathlib import Path
from typing import Any

from ...protocol.content import Audio, Image, MediaKinds, Sticker
from ..base import MediaFile
from . import nz, policy
from .compose import Prepared
from .policy import SendFailure

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "MAX_MEDIA_BYTES",
    "STICKER_PX",
    "THUMBNAIL_PX",
    "UPLOAD_TIMEOUT_S",
    "download",
    "download_message",
    "ogg_opus_seconds",
    "prepare",
    "read_file",
]

MAX_MEDIA_BYTES = 100 * 1024 * 1024
"""Largest file the worker sends or downloads: neonize passes whole files through memory, across the FFI."""
UPLOAD_TIMEOUT_S = 300.0
"""whatsmeow's upload has no deadline of its own; after this the send fails (retryable: nothing was sent)."""
DOWNLOAD_TIMEOUT_S = 300.0
THUMBNAIL_PX = 96
"""Longest side of an image's thumbnail."""
STICKER_PX = 512
VOICE_MIMETYPE = "audio/ogg; codecs=opus"

_UPLOAD_TYPES = {"image": "MediaImage", "sticker": "MediaImage", "video": "MediaVideo", "audio": "MediaAudio"}


def kind_of(content: MediaKinds) -> str:
    return str(type(content).__struct_config__.tag)


def read_file(content: MediaKinds, media: MediaFile) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes and what WhatsApp shows with them (``mimetype``, ``width``, ``height``, ``thumbnail``,
    ``seconds``). Blocking: run it in a thread. Raises :class:`SendFailure` (never retryable: the same file
    would fail again)."""
    path = Path(media.path)
    try:
        size = path.stat().st_size
        if size > MAX_MEDIA_BYTES:
            raise SendFailure(
                "media_too_large", f"the file has {size} bytes; the limit is {MAX_MEDIA_BYTES}", retryable=False
            )
        data = path.read_bytes()
    except OSError as exc:
        raise SendFailure("media_missing", f"cannot read the stored file: {exc.strerror}", retryable=False) from None
    if media.sha256 and hashlib.sha256(data).hexdigest() != media.sha256:
        raise SendFailure("media_corrupt", "the stored file does not match its sha256", retryable=False)
    facts: dict[str, Any] = {"mimetype": media.mimetype}
    if isinstance(content, Image):
        facts.update(_picture(data, thumbnail=True))
    elif isinstance(content, Sticker):
        data, facts = _sticker(data, media.mimetype, animated=content.animated)
    elif isinstance(content, Audio):
        seconds = ogg_opus_seconds(data)
        if seconds is not None:
            facts["mimetype"] = VOICE_MIMETYPE
            facts["seconds"] = max(1, round(seconds))
    return data, facts


def _picture(data: bytes, *, thumbnail: bool) -> dict[str, Any]:
    """Width, height and (optionally) a JPEG thumbnail of an image; nothing when Pillow cannot read it."""
    from PIL import Image as PillowImage

    facts: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", PillowImage.DecompressionBombWarning)
        try:
            with PillowImage.open(io.BytesIO(data)) as picture:
                facts["width"], facts["height"] = picture.size
                if thumbnail:
                    picture.draft("RGB", (THUMBNAIL_PX * 2, THUMBNAIL_PX * 2))  # JPEG: decode at a fraction
                    small = picture.convert("RGB")
                    small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                    out = io.BytesIO()
                    small.save(out, format="JPEG", quality=60)
                    facts["thumbnail"] = out.getvalue()
        except (OSError, ValueError, PillowImage.DecompressionBombError, PillowImage.DecompressionBombWarning):
            return facts  # sent without a thumbnail (or size): WhatsApp still shows the picture once downloaded
    return facts


def _sticker(data: bytes, mimetype: str, *, animated: bool) -> tuple[bytes, dict[str, Any]]:
    """A WebP sticker: the file itself, or a still image converted to a 512x512 WebP."""
    if mimetype == "image/webp":
        return data, {"mimetype": "image/webp", **_picture(data, thumbnail=False)}
    if animated or not mimetype.startswith("image/"):
        raise SendFailure(
            "media_unsupported",
            f"a sticker must be a WebP image (got {mimetype}); zapgate converts still PNG or JPEG images, but not "
            "animations or video (that needs ffmpeg)",
            retryable=False,
        )
    from PIL import Image as PillowImage

    try:
        with PillowImage.open(io.BytesIO(data)) as picture:
            still = picture.convert("RGBA")
    except (OSError, ValueError, PillowImage.DecompressionBombError) as exc:
        raise SendFailure("media_unsupported", f"the sticker image cannot be read: {exc}", retryable=False) from None
    still.thumbnail((STICKER_PX, STICKER_PX))
    canvas = PillowImage.new("RGBA", (STICKER_PX, STICKER_PX), (0, 0, 0, 0))
    canvas.paste(still, ((STICKER_PX - still.width) // 2, (STICKER_PX - still.height) // 2))
    out = io.BytesIO()
    canvas.save(out, format="WEBP", quality=80)
    return out.getvalue(), {"mimetype": "image/webp", "width": STICKER_PX, "height": STICKER_PX}


def ogg_opus_seconds(data: bytes) -> float | None:
    """The duration of an OGG/Opus file (a voice note), or None if ``data`` is not one.

    The last Ogg page's granule position counts 48 kHz samples since the start, including the encoder's pre-skip
    (RFC 7845 §4): duration = (granule - pre-skip) / 48000."""
    if not data.startswith(b"OggS"):
        return None
    head = data.find(b"OpusHead", 0, 512)
    if head < 0 or len(data) < head + 12:
        return None
    pre_skip: int = struct.unpack_from("<H", data, head + 10)[0]
    last = data.rfind(b"OggS")
    while last >= 0:
        if len(data) >= last + 14 and data[last + 4] == 0:  # stream structure version 0
            granule: int = struct.unpack_from("<q", data, last + 6)[0]
            if granule >= 0:
                return max(0.0, (granule - pre_skip) / 48000)
        last = data.rfind(b"OggS", 0, last)
    return None


async def prepare(client: Any, content: MediaKinds, media: MediaFile) -> Prepared:
    """Read and upload the file of a media message; raises :class:`SendFailure` (retryable when the upload
    could not reach WhatsApp: nothing was sent)."""
    data, facts = await asyncio.to_thread(read_file, content, media)
    media_type = getattr(nz.MediaType, _UPLOAD_TYPES.get(kind_of(content), "MediaDocument"))
    try:
        upload = await asyncio.wait_for(client.upload(data, media_type), UPLOAD_TIMEOUT_S)
    except TimeoutError:
        took = f"the upload took longer than {UPLOAD_TIMEOUT_S:g} s"
        raise SendFailure("upload_failed", took, retryable=True) from None
    except Exception as exc:
        code, retryable = policy.upload_error(str(exc))
        raise SendFailure(code, f"upload failed: {exc}", retryable=retryable) from None
    return Prepared(upload=upload, filename=media.filename, **facts)


_DOWNLOAD_FIELDS = {
    "image": "imageMessage",
    "video": "videoMessage",
    "audio": "audioMessage",
    "document": "documentMessage",
    "sticker": "stickerMessage",
}
_DOWNLOAD_TYPES = {
    "image": "ImageMessage",
    "video": "VideoMessage",
    "audio": "AudioMessage",
    "document": "DocumentMessage",
    "sticker": "StickerMessage",
}


def download_message(ref: dict[str, Any]) -> Any:
    """A message carrying nothing but what a download of ``ref`` (:attr:`MessageIn.media_ref`) needs: whatsmeow
    picks the media keys for its type, and uses the direct path (or, without one, the URL)."""
    kind = str(ref.get("media_type") or "")
    if kind not in _DOWNLOAD_FIELDS:
        raise SendFailure("media_invalid", f"unknown media type {kind!r}", retryable=False)
    try:
        length = int(ref.get("file_length") or 0)
        inner = getattr(nz.E2E, _DOWNLOAD_TYPES[kind])(
            directPath=str(ref.get("direct_path") or ""),
            URL=str(ref.get("url") or ""),
            mediaKey=base64.b64decode(ref.get("media_key") or ""),
            fileEncSHA256=base64.b64decode(ref.get("file_enc_sha256") or ""),
            fileSHA256=base64.b64decode(ref.get("file_sha256") or ""),
            fileLength=length,
            mimetype=str(ref.get("mimetype") or ""),
        )
    except (TypeError, ValueError) as exc:
        raise SendFailure("media_invalid", f"the media reference is malformed: {exc}", retryable=False) from None
    if length > MAX_MEDIA_BYTES:
        raise SendFailure(
            "media_too_large", f"the file has {length} bytes; the limit is {MAX_MEDIA_BYTES}", retryable=False
        )
    if not inner.directPath and not inner.URL:
        raise SendFailure("media_invalid", "the media reference has no path to download from", retryable=False)
    return nz.WAMessage(**{_DOWNLOAD_FIELDS[kind]: inner})


async def download(client: Any, ref: dict[str, Any], into: Path) -> None:
    """Download and decrypt a received file into ``into``; raises :class:`SendFailure` (see
    :func:`.policy.download_error` for what is retryable)."""
    message = download_message(ref)
    try:
        data = await asyncio.wait_for(client.download_any(message), DOWNLOAD_TIMEOUT_S)
    except TimeoutError:
        raise SendFailure(
            "download_failed", f"the download took longer than {DOWNLOAD_TIMEOUT_S:g} s", retryable=True
        ) from None
    except Exception as exc:
        code, retryable = policy.download_error(str(exc))
        raise SendFailure(code, f"download failed: {exc}", retryable=retryable) from None
    try:
        await asyncio.to_thread(_write, into, data)
    except OSError as exc:
        raise SendFailure("download_failed", f"cannot write {into}: {exc.strerror}", retryable=True) from None


def _write(path: Path, data: bytes) -> None:
    try:
        with path.open("wb") as file:
            file.write(data)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()  # no half-written file is left for a complete one
        raise
