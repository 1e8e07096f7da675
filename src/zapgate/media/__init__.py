"""Media files: the content-addressed blob store, what the gateway learns about a file (type, size, digest,
picture size), fetching files from URLs, the library that ties files to tenants' media ids, and the downloader
of received files.

==============  ==============================================================================
``blobs``       :class:`LocalBlobStore`: content-addressed files, streamed, hashed, shared safely
``sniff``       the type of a file from its bytes, a picture's size
``policy``      pure rules: media ids, which files each kind accepts, retry delays, byte ranges
``fetch``       fetching a media URL with SSRF protection, size and time caps
``library``     :class:`MediaLibrary`: uploads, files for sends, reads, retention
``downloader``  :class:`Downloader`: received files, downloaded in the background with retries
==============  ==============================================================================
"""

from __future__ import annotations

from .blobs import Blob, BlobStore, BlobTooLarge, HashMismatch, LocalBlobStore
from .sniff import FileFacts, sniff

__all__ = ["Blob", "BlobStore", "BlobTooLarge", "FileFacts", "HashMismatch", "LocalBlobStore", "sniff"]
