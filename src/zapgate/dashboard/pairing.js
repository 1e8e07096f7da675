// Pairing a phone with a session, in a dialog: the QR code drawn the moment it arrives and redrawn when it
// rotates ("code N of 6, expires in S s"), or an 8-character code for pairing by phone number; on the simulator
// a button makes a simulated phone scan it. It ends clearly: paired (with the phone's number), or why not.

import { h, phone } from "./dom.js";
import { qrSvg } from "./qr.js";
import { explain } from "./reasons.js";

const randomPhone = () => `+55 11 9${String(crypto.getRandomValues(new Uint32Array(1))[0] % 1e8).padStart(8, "0")}`;

export function openPairing(ctx, name, { start = false } = {}) {
  const { gw, sessions } = ctx;
  let current = null; // {code, attempt?, max_attempts?, expires_at}: what a phone would scan or type now
  let restarting = false; // stopping and starting again for a pairing code: the stop is not an end
  let ended = false;

  const state = h("p", { class: "pair-state", role: "status" }, "Starting the session…");
  const picture = h("div", { class: "qr-box" });
  const countdown = h("p", { class: "countdown" });
  const howto = h("p", { class: "hint" },
    "On the phone: WhatsApp → Settings → Linked devices → Link a device, then point the camera at the code.");

  const numberInput = h("input", { id: "pair-phone", type: "tel", autocomplete: "off", required: true,
    placeholder: "+55 11 99999-0000" });
  const byNumber = h("details", { class: "by-number" },
    h("summary", {}, "Link with a phone number instead"),
    h("form", { class: "inline", onsubmit: (event) => { event.preventDefault(); pairByNumber(); } },
      h("label", { for: "pair-phone" }, "Phone number (international format)"), numberInput,
      h("button", { type: "submit" }, "Get pairing code")));

  const simPhone = h("input", { id: "sim-phone", type: "tel", autocomplete: "off", required: true,
    value: randomPhone() });
  const simulator = ctx.engine !== "simulator" ? "" : h("form", { class: "inline sim", onsubmit: (event) => {
    event.preventDefault();
    simulateScan();
  } },
    h("label", { for: "sim-phone" }, "Simulated phone number"), simPhone,
    h("button", { type: "submit" }, "Simulate scan"),
    h("p", { class: "hint" }, "Simulator: a phone with this number scans the code shown (or types the pairing code)."));

  const retry = h("button", { type: "button", hidden: true, onclick: () => begin({}) }, "Try again");
  const close = h("button", { type: "button", autofocus: true, onclick: () => dialog.close() }, "Close");
  const dialog = h("dialog", { class: "pairing", "aria-labelledby": "pairing-title" },
    h("h2", { id: "pairing-title" }, `Pair ${name}`),
    state, picture, countdown, howto, byNumber, simulator,
    h("div", { class: "buttons" }, retry, close));

  function showQr(data) {
    current = { code: data.qr, attempt: data.attempt, max_attempts: data.max_attempts, expires_at: data.expires_at };
    const label = `QR code ${data.attempt} of ${data.max_attempts} to pair ${name}`;
    picture.replaceChildren(qrSvg(data.qr, label));
    state.textContent = `Scan this code with WhatsApp on the phone (code ${data.attempt} of ${data.max_attempts}).`;
    tick();
  }

  function showCode(data) {
    current = { code: data.code, expires_at: data.expires_at };
    picture.replaceChildren(h("p", { class: "pair-code", "aria-label": `Pairing code ${data.code.split("").join(" ")}` },
      data.code));
    state.textContent = "On the phone: Linked devices → Link a device → Link with phone number instead, " +
      "and type this code.";
    tick();
  }

  function finish(message, { success = false } = {}) {
    ended = true;
    current = null;
    picture.replaceChildren(h("p", { class: success ? "done ok" : "done" }, success ? "✓" : "✕"));
    countdown.textContent = "";
    state.textContent = message;
    howto.hidden = byNumber.hidden = true;
    if (simulator) simulator.hidden = true;
    retry.hidden = success;
    (success ? close : retry).focus();
  }

  function tick() {
    if (!current) return;
    const left = Math.ceil(current.expires_at - gw.now());
    const which = current.attempt ? `Code ${current.attempt} of ${current.max_attempts}` : "Pairing code";
    countdown.textContent = left > 0 ? `${which}, expires in ${left} s`
      : current.attempt && current.attempt < current.max_attempts ? `${which} expired; the next one is coming…`
      : `${which} expired.`;
  }

  function onEvent(event) {
    const frame = event.detail;
    if (frame.session !== name || ended) return;
    const data = frame.data;
    if (frame.event === "session.qr") showQr(data);
    else if (frame.event === "session.pair_code") showCode(data);
    else if (frame.event === "session.deleted") finish("The session was deleted.");
    else if (frame.event === "session.status") {
      if (data.status === "connected") {
        finish(`Paired: ${name} is connected as ${phone(data.me?.phone) || "the phone"}.`, { success: true });
      } else if (data.status === "failed" || data.status === "logged_out" || (data.status === "stopped" && !restarting)) {
        finish(`Pairing ended: ${explain(data.reason) || data.status}${data.detail ? ` (${data.detail})` : ""}.`);
      } else if (data.status === "starting") {
        state.textContent = "Starting the session…";
      }
    }
  }

  async function begin(fields) {
    ended = false;
    current = null;
    picture.replaceChildren();
    countdown.textContent = "";
    howto.hidden = byNumber.hidden = false;
    if (simulator) simulator.hidden = false;
    retry.hidden = true;
    state.textContent = "Starting the session…";
    try {
      const info = await gw.call("session.start", { session: name, ...fields });
      if (info.status === "connected") finish(`${name} is already connected.`, { success: true });
    } catch (error) {
      state.textContent = `Could not start ${name}: ${error.message}`;
    }
  }

  async function pairByNumber() {
    const number = numberInput.value.trim();
    restarting = true;
    try {
      if (sessions.all.get(name)?.status !== "stopped") await gw.call("session.stop", { session: name });
      simPhone.value = number;
      await begin({ pair_phone: number });
    } catch (error) {
      state.textContent = `Could not ask for a pairing code: ${error.message}`;
    } finally {
      restarting = false;
    }
  }

  async function simulateScan() {
    if (!current) {
      state.textContent = "There is no code to scan yet.";
      return;
    }
    try {
      await gw.call("sim.scan", { qr: current.code, phone: simPhone.value.trim() });
      state.textContent = "Scanned; linking…";
    } catch (error) {
      state.textContent = `The simulated phone could not scan: ${error.message} (${error.code}).`;
    }
  }

  gw.addEventListener("event", onEvent);
  const timer = setInterval(tick, 1000);
  dialog.addEventListener("close", () => {
    gw.removeEventListener("event", onEvent);
    clearInterval(timer);
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();

  const info = sessions.all.get(name);
  const last = sessions.lastQr.get(name);
  if (start) begin({});
  else if (last && ["starting", "qr"].includes(info?.status) && last.data.expires_at > gw.now()) showQr(last.data);
  else if (info?.status === "connected") finish(`${name} is already connected.`, { success: true });
  else state.textContent = "Waiting for the next code…";
  return dialog;
}
