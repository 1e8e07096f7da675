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
"""

from __future__ import annotations

from ...config import Settings
from .engine import ECHO_PHONE, SimulatorEngine

__all__ = ["ECHO_PHONE", "SimulatorEngine", "from_settings"]


def from_settings(settings: Settings) -> SimulatorEngine:
    return SimulatorEngine(
        settings.data_dir,
        qr_schedule=settings.sim_qr_schedule,
        latency=settings.sim_latency_s,
        contacts=settings.sim_contacts,
    )
