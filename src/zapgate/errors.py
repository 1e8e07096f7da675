"""Every error zapgate reports, each with a stable wire ``code`` (the close codes are ``protocol.CloseCode``).

The server raises these; the reply frame carries ``{"code": ..., "message": ...}``; the client SDK turns
the code back into the same class. Codes never change meaning once released. ``status`` is the HTTP status an
error gets when it answers an HTTP request (an upgrade refused before the WebSocket starts).

.. code-block:: text

    ZapgateError                       internal
    ├── ProtocolError
    │   ├── InvalidJSON                invalid_json
    │   ├── InvalidFrame               invalid_frame
    │   ├── UnknownType                unknown_type
    │   └── InvalidRequest             invalid_request
    ├── Unauthorized                   unauthorized
    ├── Forbidden                      forbidden
    ├── AuthTimeout                    auth_timeout          (before close 4408)
    ├── TooManyConnections             too_many_connections  (HTTP 429, or before close 4409)
    ├── ServerBusy                     server_busy           (HTTP 503)
    ├── RequestHeadTooLarge            headers_too_large     (HTTP 431)
    ├── HandshakeTimeout               handshake_timeout     (HTTP 408)
    ├── HostNotAllowed                 host_not_allowed      (HTTP 421)
    ├── RateLimited                    rate_limited          (with retry_after)
    ├── QuotaExceeded                  quota_exceeded        (with quota and limit)
    ├── TenantNotFound                 tenant_not_found
    ├── TenantExists                   tenant_exists
    ├── TokenNotFound                  token_not_found
    ├── CommandUnavailable             command_unavailable
    ├── SessionNotFound                session_not_found
    ├── SessionNotPaired               session_not_paired
    ├── InvalidRecipient               invalid_recipient
    ├── NotOnWhatsApp                  not_on_whatsapp
    ├── SendFailed                     send_failed
    ├── IdempotencyConflict            idempotency_conflict
    ├── MediaError
    │   ├── MediaNotFound              media_not_found
    │   ├── MediaNotReady              media_not_ready
    │   ├── MediaTooLarge              media_too_large
    │   └── MediaFetchFailed           media_fetch_failed
    ├── QRError
    │   ├── QRUnknown                  qr_unknown
    │   ├── QRExpired                  qr_expired
    │   └── QRAlreadyUsed              qr_used
    ├── PhoneTaken                     phone_taken           (simulator)
    ├── QRNotAvailable                 qr_not_available      (GET /v1/sessions/{session}/qr.png)
    ├── GroupNotFound                  group_not_found
    ├── NotGroupAdmin                  not_group_admin
    ├── InviteInvalid                  invite_invalid
    ├── EngineUnavailable              engine_unavailable
    ├── SessionUnavailable             session_unavailable
    ├── WebhookNotFound                webhook_not_found
    ├── TooManyWebhooks                too_many_webhooks
    ├── HTTPError                                          (REST only)
    │   ├── NotFound                   not_found
    │   ├── MethodNotAllowed           method_not_allowed
    │   ├── PayloadTooLarge            payload_too_large
    │   └── UnsupportedMediaType       unsupported_media_type
    └── ConnectionClosed               connection_closed   (client side only)

:data:`HTTP_STATUS` maps every code to the HTTP status of a REST error response (``docs/rest.md``).
"""

from __future__ import annotations

import math

__all__ = [
    "ERRORS_BY_CODE",
    "HTTP_STATUS",
    "AuthTimeout",
    "CommandUnavailable",
    "ConnectionClosed",
    "EngineUnavailable",
    "Forbidden",
    "GroupNotFound",
    "HTTPError",
    "HandshakeTimeout",
    "HostNotAllowed",
    "IdempotencyConflict",
    "InvalidFrame",
    "InvalidJSON",
    "InvalidRecipient",
    "InvalidRequest",
    "InviteInvalid",
    "MediaError",
    "MediaFetchFailed",
    "MediaNotFound",
    "MediaNotReady",
    "MediaTooLarge",
    "MethodNotAllowed",
    "NotFound",
    "NotGroupAdmin",
    "NotOnWhatsApp",
    "PayloadTooLarge",
    "PhoneTaken",
    "ProtocolError",
    "QRAlreadyUsed",
    "QRError",
    "QRExpired",
    "QRNotAvailable",
    "QRUnknown",
    "QuotaExceeded",
    "RateLimited",
    "RequestHeadTooLarge",
    "SendFailed",
    "ServerBusy",
    "SessionNotFound",
    "SessionNotPaired",
    "SessionUnavailable",
    "TenantExists",
    "TenantNotFound",
    "TokenNotFound",
    "TooManyConnections",
    "TooManyWebhooks",
    "Unauthorized",
    "UnknownType",
    "UnsupportedMediaType",
    "WebhookNotFound",
    "ZapgateError",
    "error_from_wire",
    "http_status",
]


class ZapgateError(Exception):
    """Root of every zapgate error. ``code`` is the stable wire name of the error."""

    code = "internal"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(ZapgateError):
    """A frame the server could not accept as written.

    ``request_id`` is the frame's ``id`` when it could be read, so the error can be sent as that
    command's reply; otherwise the server sends a connection-level ``error`` frame.
    """

    code = "invalid_frame"
    status = 400

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class InvalidJSON(ProtocolError):
    code = "invalid_json"


class InvalidFrame(ProtocolError):
    code = "invalid_frame"


class UnknownType(ProtocolError):
    code = "unknown_type"


class InvalidRequest(ProtocolError):
    code = "invalid_request"


class Unauthorized(ZapgateError):
    code = "unauthorized"
    status = 401


class AuthTimeout(ZapgateError):
    code = "auth_timeout"


class TooManyConnections(ZapgateError):
    """A connection limit (per client address or per token) is reached: close another one, or retry later."""

    code = "too_many_connections"
    status = 429


class ServerBusy(ZapgateError):
    """Too many connections are still authenticating: retry after a short, jittered delay."""

    code = "server_busy"
    status = 503


class RequestHeadTooLarge(ZapgateError):
    code = "headers_too_large"
    status = 431


class HandshakeTimeout(ZapgateError):
    code = "handshake_timeout"
    status = 408


class HostNotAllowed(ZapgateError):
    """The request's ``Host`` is not a name this gateway answers to (``allowed_hosts``; DNS rebinding)."""

    code = "host_not_allowed"
    status = 421


class RateLimited(ZapgateError):
    """Too many commands on one connection (over REST: requests with one token): the command was not run; send it
    again after ``retry_after`` s."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str | None:
        """The HTTP ``Retry-After`` value, whole seconds rounded up; None when the wait is not known."""
        return None if self.retry_after is None else str(math.ceil(self.retry_after))


class QuotaExceeded(ZapgateError):
    """A tenant's quota (``quota``: ``max_sessions``, ``max_queued_messages`` or ``max_queued_bytes``) would be
    passed; nothing was done. ``limit`` is the tenant's limit."""

    code = "quota_exceeded"

    def __init__(self, message: str, quota: str | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit


class TenantNotFound(ZapgateError):
    """No tenant of that name (``tenant.create`` makes one)."""

    code = "tenant_not_found"


class TenantExists(ZapgateError):
    code = "tenant_exists"


class TokenNotFound(ZapgateError):
    """No live token with that id (unknown, or revoked already)."""

    code = "token_not_found"


class Forbidden(ZapgateError):
    """The token is valid but its scopes do not allow this command."""

    code = "forbidden"


class CommandUnavailable(ZapgateError):
    code = "command_unavailable"


class SessionNotFound(ZapgateError):
    code = "session_not_found"


class SessionNotPaired(ZapgateError):
    code = "session_not_paired"


class InvalidRecipient(ZapgateError):
    code = "invalid_recipient"


class NotOnWhatsApp(ZapgateError):
    code = "not_on_whatsapp"


class SendFailed(ZapgateError):
    code = "send_failed"


class IdempotencyConflict(ZapgateError):
    code = "idempotency_conflict"


class MediaError(ZapgateError):
    """A media file cannot be used as asked."""

    code = "media_not_found"


class MediaNotFound(MediaError):
    """No media with that id for the caller's tenant (another tenant's id is reported exactly the same), or it
    was deleted by retention."""

    code = "media_not_found"


class MediaNotReady(MediaError):
    """The file is not stored (yet): a received file still downloading, or whose download failed."""

    code = "media_not_ready"


class MediaTooLarge(MediaError):
    """The file exceeds ``media_max_bytes``."""

    code = "media_too_large"


class MediaFetchFailed(MediaError):
    """A media URL could not be fetched (refused address, HTTP error, timeout…); the message says why."""

    code = "media_fetch_failed"


class QRError(ZapgateError):
    code = "qr_unknown"


class QRUnknown(QRError):
    code = "qr_unknown"


class QRExpired(QRError):
    code = "qr_expired"


class QRAlreadyUsed(QRError):
    code = "qr_used"


class PhoneTaken(ZapgateError):
    """Simulator: ``sim.scan`` with the echo contact's number, a contact's, or another tenant's phone number."""

    code = "phone_taken"


class QRNotAvailable(ZapgateError):
    """The session exists but shows no QR code now (it is not pairing, or already paired): nothing to draw."""

    code = "qr_not_available"


class GroupNotFound(ZapgateError):
    """No such group, or the session's account is not (or no longer) a member of it."""

    code = "group_not_found"


class NotGroupAdmin(ZapgateError):
    """Only the group's admins may do that (or, in an ``announce`` group, send messages)."""

    code = "not_group_admin"


class InviteInvalid(ZapgateError):
    """The invite link is unknown, revoked, or its group is gone."""

    code = "invite_invalid"


class EngineUnavailable(ZapgateError):
    code = "engine_unavailable"


class HTTPError(ZapgateError):
    """Errors of the HTTP layer itself (REST only): the request never became a command."""

    code = "not_found"


class NotFound(HTTPError):
    """No such route (``session_not_found`` is for a route that exists and a session that does not)."""

    code = "not_found"


class MethodNotAllowed(HTTPError):
    code = "method_not_allowed"


class PayloadTooLarge(HTTPError):
    code = "payload_too_large"


class UnsupportedMediaType(HTTPError):
    code = "unsupported_media_type"


class SessionUnavailable(ZapgateError):
    """With several nodes: the session is moving to another node (its node stopped, or handed it over) and
    nothing was done; retry in a few seconds. A ``message.send`` with an idempotency key is always safe to retry."""

    code = "session_unavailable"


class WebhookNotFound(ZapgateError):
    """No endpoint with that id for the caller's tenant (another tenant's id is reported exactly the same)."""

    code = "webhook_not_found"


class TooManyWebhooks(ZapgateError):
    """The tenant has ``webhook_max_per_tenant`` endpoints already: delete one first."""

    code = "too_many_webhooks"


class ConnectionClosed(ZapgateError):
    """Raised by the client SDK when the connection closed before a reply arrived."""

    code = "connection_closed"


def _all_subclasses(cls: type[ZapgateError]) -> list[type[ZapgateError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


#: Wire code → class. Where a base class and a subclass share a code, the subclass wins.
ERRORS_BY_CODE: dict[str, type[ZapgateError]] = {c.code: c for c in _all_subclasses(ZapgateError)}


HTTP_STATUS: dict[str, int] = {
    # The request as written is wrong: fix it, do not retry it as is.
    "invalid_json": 400,
    "invalid_frame": 400,
    "unknown_type": 400,
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_group_admin": 403,
    # Nothing by that name (for this tenant, on this engine).
    "not_found": 404,
    "session_not_found": 404,
    "media_not_found": 404,
    "tenant_not_found": 404,
    "token_not_found": 404,
    "webhook_not_found": 404,
    "command_unavailable": 404,
    "qr_unknown": 404,
    "qr_not_available": 404,
    "group_not_found": 404,
    "invite_invalid": 404,
    "method_not_allowed": 405,
    # Valid, but the state of things does not allow it (now).
    "session_not_paired": 409,
    "idempotency_conflict": 409,
    "tenant_exists": 409,
    "qr_used": 409,
    "phone_taken": 409,
    "media_not_ready": 409,
    "too_many_webhooks": 409,
    "qr_expired": 410,
    "payload_too_large": 413,
    "media_too_large": 413,
    "unsupported_media_type": 415,
    # The request has the documented shape, but a value cannot be used: a recipient that is neither a phone
    # number nor a JID (the schema says "a string"), or one that WhatsApp refuses.
    "invalid_recipient": 422,
    "not_on_whatsapp": 422,
    "media_fetch_failed": 422,
    "send_failed": 422,
    # Too much, too fast: wait (``retry_after`` says how long, when known).
    "rate_limited": 429,
    "quota_exceeded": 429,
    "too_many_connections": 429,
    "headers_too_large": 431,
    "auth_timeout": 408,
    "handshake_timeout": 408,
    "host_not_allowed": 421,
    "internal": 500,
    # Retry later.
    "engine_unavailable": 503,
    "session_unavailable": 503,
    "server_busy": 503,
    "connection_closed": 503,
}
"""Wire code → HTTP status of a REST error response; every code has one (``tests/test_rest.py`` checks)."""


def http_status(code: str) -> int:
    """The HTTP status for an error code; 500 for a code not in :data:`HTTP_STATUS` (a bug: the test catches it)."""
    return HTTP_STATUS.get(code, 500)


def error_from_wire(
    code: str,
    message: str,
    retry_after: float | None = None,
    *,
    quota: str | None = None,
    limit: int | None = None,
) -> ZapgateError:
    """Build the exception for a wire error; unknown codes become a plain ``ZapgateError``."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        err = ZapgateError(message)
        err.code = code
        return err
    if cls is RateLimited:
        return RateLimited(message, retry_after)
    if cls is QuotaExceeded:
        return QuotaExceeded(message, quota, limit)
    return cls(message)
