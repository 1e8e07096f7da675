// Plain words for the reason codes of session and message statuses.

// The reasons a person meets most (docs/protocol.md, "Reasons"); others are shown as they are.
export const REASONS = {
  qr_timeout: "no phone scanned the QR codes in time",
  pair_error: "WhatsApp refused the pairing",
  unlinked_from_phone: "the phone removed this device from Linked devices",
  logout_requested: "logged out from here",
  stop_requested: "stopped from here",
  network: "the network is down; reconnecting",
  keepalive_timeout: "WhatsApp stopped answering; reconnecting",
  whatsapp_unreachable: "WhatsApp cannot be reached",
  stream_replaced: "the same device connected from somewhere else",
  engine_mismatch: "paired with another engine",
  device_keys_missing: "the stored keys are gone: pair again",
  client_outdated: "this version is too old for WhatsApp: upgrade zapgate",
  send_restricted: "WhatsApp restricts sending",
  temporary_ban: "WhatsApp banned the account for a while",
  not_on_whatsapp: "the number has no WhatsApp account",
  whatsapp_refused: "WhatsApp refused the message",
  send_unconfirmed: "WhatsApp did not confirm it in time (not resent, to avoid a duplicate)",
  logged_out: "the session was logged out first",
  session_deleted: "the session was deleted first",
};

export function explain(reason) {
  if (!reason) return "";
  const base = reason.split(":")[0];
  return REASONS[reason] || REASONS[base] || reason;
}
