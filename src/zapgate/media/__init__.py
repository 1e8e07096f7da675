"""Media files: the content-addressed blob store under the data directory, and what the gateway learns about a
file (type, size, digest, picture size)."""

from __future__ import annotations

from .blobs import Blob, BlobStore, BlobTooLarge, LocalBlobStore
from .sniff import FileFacts, sniff

__all__ = ["Blob", "BlobStore", "BlobTooLarge", "FileFacts", "LocalBlobStore", "sniff"]
