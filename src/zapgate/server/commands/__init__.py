"""Command handlers: one small function per command, bound to its request struct with :func:`handles`.

Handlers take the :class:`~zapgate.gateway.Gateway`, the :class:`~zapgate.auth.Caller` and the decoded
command, and return the reply's ``data`` (the struct the command declares). They know nothing about the
transport: the WebSocket connection and the REST routes both call :func:`run_command`, which checks the
caller's scope first. Every handler that names a session resolves it with the caller's tenant, so another
tenant's session is indistinguishable from a missing one.

============  ======================================
``registry``  :func:`handles`, :func:`run_command`
``sessions``  ``session.*``
``messages``  ``message.*``
``media``     ``media.*``
``presence``  ``chat.presence``, ``presence.*``
``chats``     ``chat.*``, ``message.history``
``contacts``  ``contact.*``
``groups``    ``group.*``
``events``    ``events.fetch``, ``ping``
``sim``       ``sim.*`` (simulator only)
``admin``     ``tenant.*``, ``token.*``, ``audit.list``
``webhooks``  ``webhook.*``
============  ======================================
"""

from __future__ import annotations

from . import admin, chats, contacts, events, groups, media, messages, presence, sessions, sim, webhooks
from .registry import HANDLERS, execute, handles, run_command

__all__ = [
    "HANDLERS",
    "admin",
    "chats",
    "contacts",
    "events",
    "execute",
    "groups",
    "handles",
    "media",
    "messages",
    "presence",
    "run_command",
    "sessions",
    "sim",
    "webhooks",
]
