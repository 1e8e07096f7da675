"""The simulator engine: an offline WhatsApp for sandboxes and tests.

It behaves like WhatsApp multi-device as seen through whatsmeow:

- **Pairing.** Opening an unpaired session shows QR codes shaped like WhatsApp's (``2@ref,noiseKey,
  identityKey,advSecret``, base64 parts) on WhatsApp's schedule (60 s, then 20 s each, six codes; configurable),
  then fails with ``qr_timeout``. A simulated phone scans with :meth:`SimulatorEngine.scan`; a pairing code
  (``ABCD-EFGH``) is shown when a phone number is given, and the phone may type it instead.
- **A network of accounts.** Every paired phone is an account; so are the echo contact ``+1 555 000 0000``
  (reads, then replies with the same text), the numbers in ``sim_contacts`` and any contact that wrote to a
  session. Sending elsewhere fails with ``not_on_whatsapp``.
- **Delivery like WhatsApp's server.** A message is recorded once per (sender, message id): sending the same
  id again is accepted and ignored, as WhatsApp drops repeated ids. A send returns once the server's
  acknowledgement is back, one simulated latency (``sim_latency_s``) after the server took the message.
  Messages and receipts for a linked device that is offline wait on the "server" and arrive, in order, when
  it reconnects. The record lives in ``simulator.db`` in the data directory, so it survives a gateway crash,
  and tests can read it.
- **Phone-side actions.** The phone can unlink the device (``logged_out``), the network can drop and come
  back (``disconnected`` → ``connected``), and WhatsApp can restrict an account's sending for a while.
- **One connection per device.** A device connects from one place at a time: a new connection replaces the
  old one, which gets ``stream_replaced`` and can send nothing more, as whatsmeow's would.
- **Several gateway nodes** (``docs/scaling.md``) share one simulated WhatsApp: its state then lives in their
  PostgreSQL database, each node connects the devices of the sessions it runs, and mail for a device is picked
  up by that node. Every connect is logged with the node and lease epoch that made it
  (:meth:`SimulatorEngine.connection_log`), so tests can prove two nodes never fought over a device.
"""

from __future__ import annotations

from ...config import Settings
from .engine import ECHO_PHONE, SimulatorEngine

__all__ = ["ECHO_PHONE", "SimulatorEngine", "from_settings"]


def from_settings(settings: Settings, *, node: str | None = None) -> SimulatorEngine:
    return SimulatorEngine(
        settings.data_dir,
        qr_schedule=settings.sim_qr_schedule,
        latency=settings.sim_latency_s,
        contacts=settings.sim_contacts,
        history_messages=settings.sim_history_messages,
        database_url=settings.database_url if settings.clustered else None,
        node=node,
        lock_hold_limit_s=settings.lock_hold_limit_s,
        # WhatsApp's media servers, as the simulator plays them: shared by the nodes of a cluster.
        cdn_dir=settings.media_path / "simulator-cdn" if settings.clustered else None,
    )
