// Small DOM helpers. Text always goes in as text (never as HTML): names, messages and reasons come from
// other people's phones.

/** h("button", {class: "x", onclick: f, "aria-label": "…"}, "text", child…) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** "+5511999990000" from the digits of a phone number. */
export const phone = (digits) => (digits ? `+${digits}` : "");

/** The phone number of a JID ("5511…@s.whatsapp.net" → "+5511…"); other JIDs as they are. */
export function contact(jid) {
  const match = /^(\d+)(?::\d+)?@s\.whatsapp\.net$/.exec(jid || "");
  return match ? `+${match[1]}` : jid || "";
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** A clock time for epoch seconds. */
export const clock = (seconds) => timeFormat.format(new Date(seconds * 1000));
export const fullDate = (seconds) => dateFormat.format(new Date(seconds * 1000));

/** "12 s", "5 min", "3 h", "2 d": how long ago `seconds` (epoch) was, for a `now` in epoch seconds. */
export function ago(seconds, now) {
  const s = Math.max(0, Math.round(now - seconds));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** Ask before something that cannot be undone; resolves true when confirmed. Uses the page's one <dialog>. */
export function confirmAction(question, action) {
  const dialog = $("#confirm");
  $("#confirm-question").textContent = question;
  $("#confirm-ok").textContent = action;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

/** A random id, for idempotency keys and the like. */
export function randomId(bytes = 12) {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return [...raw].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** "1.5 MiB" for a number of bytes. */
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value >= 10 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** The id of a token of the form zgt_<id>_<secret>, or null (the admin token given at start-up has none). */
export function tokenId(token) {
  const match = /^zgt_([0-9a-f]{12})_/.exec(token || "");
  return match ? match[1] : null;
}
