// The Events view: the tenant's event stream, live (and resumed after a dropped connection, so nothing is
// missed), newest first, filterable by session and event; each event opens to its full data.

import { clock, contact, fullDate, h } from "./dom.js";
import { explain } from "./reasons.js";

const KEEP = 1000; // events kept in the page
const SHOWN = 300; // rows drawn for the current filter
export const KNOWN = ["session.status", "session.qr", "session.pair_code", "session.restricted", "session.deleted",
  "message.status", "message.received", "message.reaction", "message.edited", "message.revoked", "poll.vote",
  "status.received", "presence"];

const short = (text) => (text && text.length > 80 ? `${text.slice(0, 80)}…` : text);
const author = (d) => (d.from_me ? "from the phone" : `from ${contact(d.from)}`);
/** The words of a message: its text (or caption, or poll question), else its kind. */
const words = (d) => short(d.text ?? d.content?.text) ?? `[${d.kind ?? d.content?.kind ?? "message"}]`;

/** One line about an event, for its row. */
export function summary(frame) {
  const d = frame.data || {};
  switch (frame.event) {
    case "session.status": return `${d.status}${d.reason ? `: ${explain(d.reason)}` : ""}`;
    case "session.qr": return `QR code ${d.attempt} of ${d.max_attempts}`;
    case "session.pair_code": return `pairing code ${d.code}`;
    case "session.restricted": return `sending restricted until ${clock(d.until)} (${explain(d.reason)})`;
    case "session.deleted": return "deleted";
    case "message.status":
      return `${d.status} · to ${contact(d.chat)}${d.reason ? `: ${explain(d.reason)}` : ""}`;
    case "message.received":
      return `${author(d)}: ${d.kind && d.kind !== "text" && d.text ? `[${d.kind}] ` : ""}${words(d)}`;
    case "message.reaction": return `${author(d)}: ${d.emoji ? `reacted ${d.emoji}` : "removed a reaction"}`;
    case "message.edited": return `${author(d)}: edited to ${words(d)}`;
    case "message.revoked": return `${author(d)}: deleted a message for everyone`;
    case "poll.vote": return `${author(d)}: voted ${d.options?.length ? d.options.join(", ") : "nothing (withdrawn)"}`;
    case "status.received": return `status ${author(d)}: ${words(d)}`;
    case "presence":
      return `${contact(d.from)} ${d.state}${d.chat !== d.from ? ` in ${contact(d.chat)}` : ""}` +
        `${d.last_seen ? `, last seen ${clock(d.last_seen)}` : ""}`;
    default: return "";
  }
}

export default {
  id: "events",
  title: "Events",
  scope: "read",
  mount(ctx, section) {
    const { gw, sessions } = ctx;
    const events = []; // oldest first
    const seen = new Set();
    const sessionFilter = h("select", { id: "events-session", onchange: render },
      h("option", { value: "" }, "All sessions"));
    const typeFilter = h("select", { id: "events-type", onchange: render },
      h("option", { value: "" }, "All events"), KNOWN.map((name) => h("option", { value: name }, name)));
    const count = h("p", { class: "count", "aria-live": "off" });
    const list = h("ol", { class: "events", "aria-labelledby": "events-title", reversed: true });
    const clear = h("button", { type: "button", onclick: () => { events.length = 0; render(); } }, "Clear");
    section.append(
      h("h1", { id: "events-title" }, "Events"),
      h("div", { class: "filters" },
        h("label", { for: "events-session" }, "Session"), sessionFilter,
        h("label", { for: "events-type" }, "Event"), typeFilter, clear),
      count, list);

    const matches = (frame) => (!sessionFilter.value || frame.session === sessionFilter.value) &&
      (!typeFilter.value || frame.event === typeFilter.value);

    function row(frame) {
      return h("li", { "data-seq": String(frame.seq), "data-event": frame.event, "data-session": frame.session },
        h("details", {},
          h("summary", {},
            h("time", { datetime: new Date(frame.ts * 1000).toISOString(), title: fullDate(frame.ts) }, clock(frame.ts)),
            h("span", { class: "seq" }, `#${frame.seq}`),
            h("span", { class: "session" }, frame.session || "—"),
            h("span", { class: "kind" }, frame.event),
            h("span", { class: "what" }, summary(frame))),
          h("pre", {}, JSON.stringify(frame.data, null, 2))));
    }

    function addOption(select, value) {
      if ([...select.options].some((option) => option.value === value)) return;
      select.append(h("option", { value }, value));
    }

    function render() {
      const shown = events.filter(matches).slice(-SHOWN).reverse();
      list.replaceChildren(...shown.map(row));
      count.textContent = `${shown.length} of ${events.length} events shown`;
    }

    function take(frame, { live }) {
      if (seen.has(frame.seq)) return;
      seen.add(frame.seq);
      if (frame.session) addOption(sessionFilter, frame.session);
      addOption(typeFilter, frame.event);
      if (live || !events.length || frame.seq > events[events.length - 1].seq) {
        events.push(frame);
      } else {
        const at = events.findIndex((other) => other.seq > frame.seq);
        events.splice(at < 0 ? events.length : at, 0, frame);
      }
      if (events.length > KEEP) seen.delete(events.shift().seq);
      if (live && matches(frame)) {
        list.prepend(row(frame));
        while (list.children.length > SHOWN) list.lastElementChild.remove();
        count.textContent = `${list.children.length} of ${events.length} events shown`;
      }
    }

    gw.addEventListener("event", (event) => take(event.detail, { live: true }));
    ctx.history.then((past) => {
      for (const frame of past) take(frame, { live: false });
      render();
    });
    sessions.addEventListener("change", () => { for (const name of sessions.names) addOption(sessionFilter, name); });
    render();
  },
};
