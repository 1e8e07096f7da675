// The Send view: send a test message from a session and watch it go sent → delivered → read. Each send carries
// an idempotency key, so when the connection drops mid-send it is sent again after the reconnect and WhatsApp
// still gets it once.

import { clock, contact, h, randomId } from "./dom.js";
import { explain } from "./reasons.js";

const ECHO = "+1 555 000 0000"; // the simulator's echo contact: it answers, and reads what it gets
const ORDER = ["queued", "sent", "delivered", "read", "played"];
const EARLY_KEEP = 200;
const RESEND_WAIT_MS = 30000;

export default {
  id: "send",
  title: "Send",
  scope: "send",
  mount(ctx, section) {
    const { gw, sessions } = ctx;
    const from = h("select", { id: "send-session", required: true });
    const to = h("input", { id: "send-to", type: "tel", required: true, autocomplete: "off",
      value: ctx.engine === "simulator" ? ECHO : "", placeholder: "+55 11 99999-0000" });
    const text = h("textarea", { id: "send-text", required: true, rows: 3, maxlength: "65536" });
    const button = h("button", { type: "submit" }, "Send");
    const notice = h("p", { class: "notice", role: "status" });
    const sent = h("ol", { class: "sent", "aria-labelledby": "sent-title" });
    const form = h("form", { class: "stacked", onsubmit: submit },
      h("label", { for: "send-session" }, "From session"), from,
      h("label", { for: "send-to" }, "To (phone number in international format, or a JID)"), to,
      ctx.engine === "simulator"
        ? h("p", { class: "hint" }, `${ECHO} is the simulator's echo contact: it reads your message and answers.`) : "",
      h("label", { for: "send-text" }, "Message"), text,
      h("div", { class: "buttons" }, button));
    section.append(h("h1", { id: "send-title" }, "Send a test message"), form, notice,
      h("h2", { id: "sent-title" }, "Sent from this page"), sent);

    const tracked = new Map(); // message id → {item, steps, replies, reached: Map(status → time)}
    const early = new Map(); // message id → status events that came before the reply (docs/protocol.md allows it)

    function fillSessions() {
      const chosen = from.value;
      const paired = sessions.names.map((name) => sessions.all.get(name)).filter((info) => info.paired);
      paired.sort((a, b) => (b.status === "connected") - (a.status === "connected"));
      from.replaceChildren(...paired.map((info) =>
        h("option", { value: info.session }, `${info.session} (${info.status})`)));
      if (paired.some((info) => info.session === chosen)) from.value = chosen;
      button.disabled = paired.length === 0;
      if (!paired.length) notice.textContent = "No paired session yet: pair one in Sessions first.";
      else if (notice.textContent.startsWith("No paired session")) notice.textContent = "";
    }

    function nextReady() {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the gateway did not come back in time")), RESEND_WAIT_MS);
        gw.addEventListener("ready", () => { clearTimeout(timer); resolve(); }, { once: true });
      });
    }

    async function sendOnce(fields) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await gw.call("message.send", fields);
        } catch (error) {
          if (attempt >= 3 || !["connection_lost", "not_connected"].includes(error.code)) throw error;
          notice.textContent = "The connection dropped; sending again with the same idempotency key once it is back.";
          if (gw.state !== "live") await nextReady();
        }
      }
    }

    async function submit(event) {
      event.preventDefault();
      const fields = { session: from.value, to: to.value.trim(), text: text.value, idempotency_key: randomId() };
      button.disabled = true;
      notice.textContent = "Sending…";
      try {
        const result = await sendOnce(fields);
        track(result, fields);
        text.value = "";
        notice.textContent = `Message to ${fields.to}: ${result.status}.`;
      } catch (error) {
        notice.textContent = `Not sent: ${error.message}${error.code ? ` (${error.code})` : ""}.`;
      } finally {
        button.disabled = false;
      }
    }

    function track(result, fields) {
      if (tracked.has(result.message_id)) return;
      const steps = h("ol", { class: "steps", "aria-label": "Status" });
      const replies = h("div", { class: "replies" });
      const item = h("li", { "data-message-id": result.message_id },
        h("p", { class: "to" }, `To ${contact(result.chat) || fields.to} from ${fields.session}`),
        h("blockquote", {}, fields.text), steps, replies);
      sent.prepend(item);
      const entry = { item, steps, replies, reached: new Map(), reason: null };
      tracked.set(result.message_id, entry);
      advance(entry, result.status, result.timestamp || gw.now());
      for (const data of early.get(result.message_id) || []) advance(entry, data.status, data.timestamp, data.reason);
      early.delete(result.message_id);
    }

    function advance(entry, status, time, reason) {
      if (entry.reached.has(status)) return;
      entry.reached.set(status, time);
      if (reason) entry.reason = reason;
      const reached = [...ORDER, "failed"].filter((s) => entry.reached.has(s));
      entry.item.dataset.status = entry.reached.has("failed") ? "failed" : reached[reached.length - 1];
      entry.steps.replaceChildren(...reached.map((s) => h("li", { class: `badge status-${s}` },
        `${s} ${clock(entry.reached.get(s))}${s === "failed" && entry.reason ? `: ${explain(entry.reason)}` : ""}`)));
    }

    gw.addEventListener("event", (event) => {
      const { event: name, data } = event.detail;
      if (name === "message.status") {
        const entry = tracked.get(data.message_id);
        if (entry) advance(entry, data.status, data.timestamp, data.reason);
        else {
          early.set(data.message_id, [...(early.get(data.message_id) || []), data]);
          if (early.size > EARLY_KEEP) early.delete(early.keys().next().value);
        }
      } else if (name === "message.received" && data.reply_to && tracked.has(data.reply_to)) {
        tracked.get(data.reply_to).replies.append(
          h("p", { class: "reply" }, `↩ ${contact(data.from)} answered: `, h("q", {}, data.text)));
      }
    });
    sessions.addEventListener("change", fillSessions);
    fillSessions();
  },
};
