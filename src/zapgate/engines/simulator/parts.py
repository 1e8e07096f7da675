"""What the simulator engine's parts (accounts, groups) need of the engine they are mixed into."""

from __future__ import annotations

import abc

from ...jid import Jid
from ...storage.database import Database
from .devices import Device, Mail
from .server import SimServer

__all__ = ["EngineParts"]


class EngineParts(abc.ABC):
    """The state and the helpers of :class:`~.engine.SimulatorEngine` that its mixed-in parts use."""

    _server: SimServer
    _db: Database
    _accounts: dict[str, tuple[str, str]]
    """phone → (kind, lid), kept up to date by the server."""

    @abc.abstractmethod
    def _sending_device(self, session_id: str) -> Device: ...

    @abc.abstractmethod
    async def _phone_of(self, jid: Jid) -> str | None: ...

    @abc.abstractmethod
    def _shown_as(self, phone: str) -> str: ...

    @abc.abstractmethod
    def _lid_jid(self, phone: str) -> str: ...

    @abc.abstractmethod
    def _name(self, phone: str) -> str: ...

    @abc.abstractmethod
    def _post(self, mail: Mail) -> None: ...
