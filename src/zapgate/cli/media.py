"""Files from the command line: ``zapgate send … --image FILE`` (and ``--video``, ``--voice``, ``--audio``,
``--file``, ``--sticker``) upload the file, then send it; ``zapgate media get|upload|info|retry``.

Built on :mod:`.client` (its connection options, :func:`~.client.run` and exit codes); registered after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from ..client import Client
from ..protocol.content import Audio, Content, Document, Image, Media, Sticker, Video
from .client import REQUEST_TIMEOUT, _seconds, run
from .exit_codes import EXIT_CODES_HELP, EXIT_OK, EXIT_USAGE
from .output import Failure, say

__all__ = ["add_commands", "media_content"]

FILE_OPTIONS = ("image", "video", "voice", "audio", "file", "sticker")
OTHER_KINDS = ("location", "contact", "poll", "vote", "react", "edit", "revoke", "content")


def add_commands(commands: Any) -> None:
    """Add the file options to ``send`` and the ``media`` commands (after :func:`.client.add_commands`)."""
    send: argparse.ArgumentParser = commands.choices["send"]
    send.description = (send.description or "") + (
        "\n  zapgate send main +5511999990000 --image foto.jpg --caption 'Olá!'\n"
        "  zapgate send main +5511999990000 --file contrato.pdf\n"
        "  zapgate send main +5511999990000 --voice recado.ogg"
    )
    files = send.add_argument_group("files (uploaded, then sent; docs/media.md)")
    exclusive = files.add_mutually_exclusive_group()
    exclusive.add_argument("--image", metavar="FILE", type=Path, help="send a picture (with --caption)")
    exclusive.add_argument("--video", metavar="FILE", type=Path, help="send a video (with --caption)")
    exclusive.add_argument("--voice", metavar="FILE", type=Path, help="send a voice note (OGG/Opus)")
    exclusive.add_argument("--audio", metavar="FILE", type=Path, help="send a sound file")
    exclusive.add_argument("--file", metavar="FILE", type=Path, help="send any file as a document")
    exclusive.add_argument("--sticker", metavar="FILE", type=Path, help="send a WebP image as a sticker")
    files.add_argument("--caption", help="the caption of --image, --video or --file (TEXT also works)")
    files.add_argument("--filename", help="--file: the name the recipient sees (default: the file's own)")

    media = commands.add_parser(
        "media",
        help="download, upload or inspect media files",
        description="Media files of your tenant: received files (once 'media.ready') and uploads.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = media.add_subparsers(dest="media_command", metavar="ACTION", required=True)
    parents = _parents(send)

    def action(name: str, body: Any, *, help: str, description: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(
            name, help=help, description=description, parents=parents, epilog=EXIT_CODES_HELP
        )
        parser.add_argument(
            "--timeout",
            dest="request_timeout",
            type=_seconds,
            default=REQUEST_TIMEOUT,
            metavar="SECONDS",
            help=f"give up when the gateway has not answered within this many seconds (default {REQUEST_TIMEOUT:g})",
        )
        parser.set_defaults(handler=lambda args: run(args, body))
        return parser

    get = action(
        "get",
        _get,
        help="download a file",
        description="Download media MEDIA_ID (from a message.received or media.ready event, or an upload) to FILE.",
    )
    get.add_argument("media_id", metavar="MEDIA_ID")
    get.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write it ('-': stdout)")

    upload = action(
        "upload",
        _upload,
        help="upload a file and print its media id",
        description='Upload FILE; prints its media id (send it with --content \'{"kind":…,"media":{"id":…}}\').',
    )
    upload.add_argument("path", metavar="FILE", type=Path)
    upload.add_argument("--mimetype", help="its type, if its bytes do not say (the gateway reads them)")
    upload.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")

    info = action("info", _info, help="show what the gateway knows of a file", description="Print MEDIA_ID's info.")
    info.add_argument("media_id", metavar="MEDIA_ID")

    retry = action(
        "retry",
        _retry,
        help="download a received file again",
        description="Download the received file MEDIA_ID again now (after media.failed).",
    )
    retry.add_argument("media_id", metavar="MEDIA_ID")


def _parents(send: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """A parent parser with the connection options (``--url``, ``--token``) as ``send`` has them."""
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    for action in send._actions:
        if action.dest in ("url", "token"):
            group.add_argument(*action.option_strings, dest=action.dest, help=action.help)
    return [connection]


async def media_content(client: Client, args: argparse.Namespace) -> Content | None:
    """The content ``send``'s file options describe, once the file is uploaded; None without one."""
    chosen = [name for name in FILE_OPTIONS if getattr(args, name, None) is not None]
    if not chosen:
        return None
    others = [f"--{name}" for name in OTHER_KINDS if getattr(args, name, None) is not None]
    if others:
        raise Failure(f"--{chosen[0]} cannot be combined with {', '.join(others)}", EXIT_USAGE)
    option = chosen[0]
    path: Path = getattr(args, option)
    if not await asyncio.to_thread(path.is_file):
        raise Failure(f"--{option}: no such file: {path}", EXIT_USAGE)
    caption = args.caption or args.text
    name = args.filename or path.name
    uploaded = await client.upload(path, filename=name if option == "file" else path.name)
    media = Media(id=uploaded.media_id)
    match option:
        case "image":
            return Image(media=media, caption=caption)
        case "video":
            return Video(media=media, caption=caption)
        case "voice" | "audio":
            return Audio(media=media, voice=option == "voice")
        case "sticker":
            return Sticker(media=media)
    return Document(media=media, filename=name, caption=caption)


async def _get(client: Client, args: argparse.Namespace) -> int:
    if args.output == "-":
        sys.stdout.buffer.write(await client.download(args.media_id))
        sys.stdout.flush()
        return EXIT_OK
    await client.download_to(args.media_id, args.output)
    say(f"{args.media_id} written to {args.output}", sys.stderr)
    return EXIT_OK


async def _upload(client: Client, args: argparse.Namespace) -> int:
    if not await asyncio.to_thread(args.path.is_file):
        raise Failure(f"no such file: {args.path}", EXIT_USAGE)
    info = await client.upload(args.path, mimetype=args.mimetype)
    if args.json:
        say(msgspec.json.encode(info).decode())
    else:
        say(info.media_id)
        say(f"{info.mimetype}, {info.size} bytes, sha256 {info.sha256}", sys.stderr)
    return EXIT_OK


async def _info(client: Client, args: argparse.Namespace) -> int:
    say(json.dumps(msgspec.to_builtins(await client.media_info(args.media_id))))
    return EXIT_OK


async def _retry(client: Client, args: argparse.Namespace) -> int:
    info = await client.retry_media(args.media_id)
    say(f"{args.media_id}: {info.status}")
    return EXIT_OK
