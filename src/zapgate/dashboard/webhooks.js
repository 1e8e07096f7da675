// The Webhooks view (tenant scope): the tenant's endpoints with where delivery stands; create one (URL, event
// and session filters; the secret shown once), send a test ping, and per endpoint its recent attempts, its dead
// letters (sent again on request), a replay from a seq, disable/enable and delete. docs/webhooks.md.

import { clock, confirmAction, fullDate, h } from "./dom.js";
import { KNOWN } from "./events.js";

const LIST_REFRESH_MS = 5000;
const ATTEMPTS_SHOWN = 50;
const list = (text) => text.split(/[\s,]+/).filter(Boolean);

export default {
  id: "webhooks",
  title: "Webhooks",
  scope: "tenant",
  wholeTenant: true, // a token limited to some sessions may not have endpoints (they would see every session)
  mount(ctx, section) {
    const { gw } = ctx;
    let hooks = []; // webhook info, as webhook.list answers
    let open = null; // the id of the endpoint whose deliveries are shown
    const notice = h("p", { class: "notice", role: "status" });

    // -- create
    const url = h("input", { id: "new-hook-url", type: "url", required: true, maxlength: "2048", autocomplete: "off",
      placeholder: "your server's address, starting with https or http", pattern: "[Hh][Tt][Tt][Pp][Ss]?://\\S+" });
    const events = h("input", { id: "new-hook-events", autocomplete: "off", list: "hook-event-names",
      placeholder: "e.g. message.received, message.status", "aria-describedby": "new-hook-events-hint" });
    const sessions = h("input", { id: "new-hook-sessions", autocomplete: "off", placeholder: "e.g. sales-1",
      "aria-describedby": "new-hook-sessions-hint" });
    const description = h("input", { id: "new-hook-description", maxlength: "200", autocomplete: "off" });
    const create = h("form", { class: "stacked card", "aria-labelledby": "new-hook-title", onsubmit: submit },
      h("h2", { id: "new-hook-title" }, "New endpoint"),
      h("label", { for: "new-hook-url" }, "URL"), url,
      h("label", { for: "new-hook-events" }, "Events"), events,
      h("datalist", { id: "hook-event-names" }, [...KNOWN, "webhook.disabled"].map((name) => h("option", { value: name }))),
      h("p", { class: "hint", id: "new-hook-events-hint" }, "Event names separated by commas; empty: every event."),
      h("label", { for: "new-hook-sessions" }, "Sessions"), sessions,
      h("p", { class: "hint", id: "new-hook-sessions-hint" }, "Session names separated by commas; empty: every session."),
      h("label", { for: "new-hook-description" }, "Description"), description,
      h("p", { class: "hint" }, "The gateway POSTs each event, signed (Standard Webhooks), in order, from the next " +
        "event on; addresses on private networks need ZAPGATE_OUTBOUND_ALLOW."),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Create endpoint")));

    // The new endpoint's secret, shown once.
    const secret = h("input", { id: "created-secret", readonly: true, spellcheck: "false", autocomplete: "off" });
    const copied = h("span", { role: "status", class: "hint" });
    const created = h("div", { class: "created card", role: "region", "aria-labelledby": "created-secret-title", hidden: true },
      h("h2", { id: "created-secret-title" }, "Endpoint created"),
      h("p", {}, "Copy its signing secret now: it is shown only this once. Your server verifies each request with it."),
      h("label", { for: "created-secret" }, "Signing secret"),
      h("div", { class: "inline" }, secret,
        h("button", { type: "button", onclick: copy }, "Copy secret"),
        h("button", { type: "button", class: "secondary", onclick: () => { secret.value = ""; created.hidden = true; } },
          "Done")),
      copied);

    // -- the list
    const body = h("tbody");
    const table = h("table", { class: "grid" },
      h("caption", { class: "visually-hidden" }, "Webhook endpoints"),
      h("thead", {}, h("tr", {}, ["Endpoint", "Events", "Sessions", "State", "Delivery", "Actions"]
        .map((title) => h("th", { scope: "col" }, title)))),
      body);
    const empty = h("p", { class: "empty" }, "No endpoints yet: create one below to receive events over HTTP.");

    // -- one endpoint's deliveries
    const detailTitle = h("h2", { id: "hook-detail-title" });
    const attemptsBody = h("tbody");
    const deadBody = h("tbody");
    const noAttempts = h("p", { class: "empty" }, "No attempts yet.");
    const noDead = h("p", { class: "empty" }, "No dead letters.");
    const redeliverAll = h("button", { type: "button", onclick: () => redeliver(null) }, "Redeliver all");
    const fromSeq = h("input", { id: "replay-from", type: "number", min: "0", step: "1", required: true, inputmode: "numeric" });
    const detail = h("section", { class: "card", "aria-labelledby": "hook-detail-title", hidden: true },
      detailTitle,
      h("h3", { id: "attempts-title" }, "Recent attempts"),
      h("table", { class: "grid attempts", "aria-labelledby": "attempts-title" },
        h("thead", {}, h("tr", {}, ["When", "Seq", "Event", "Attempt", "Outcome", "Status", "Time", "Error"]
          .map((title) => h("th", { scope: "col" }, title)))),
        attemptsBody),
      noAttempts,
      h("h3", { id: "dead-title" }, "Dead letters"),
      h("p", { class: "hint" }, "Events the endpoint never accepted. Redelivered ones go before the next event, with " +
        "their original webhook-id."),
      h("table", { class: "grid dead", "aria-labelledby": "dead-title" },
        h("thead", {}, h("tr", {}, ["Seq", "Event", "Session", "Attempts", "Status", "Error", "Dead since", "Actions"]
          .map((title) => h("th", { scope: "col" }, title)))),
        deadBody),
      noDead,
      h("div", { class: "buttons" }, redeliverAll),
      h("h3", { id: "replay-title" }, "Replay"),
      h("form", { class: "inline", "aria-labelledby": "replay-title", onsubmit: replay },
        h("label", { for: "replay-from" }, "From seq"), fromSeq,
        h("button", { type: "submit" }, "Replay")),
      h("p", { class: "hint" }, "Moves the endpoint's cursor: the events from this seq on that the log still holds are " +
        "sent again, in order."),
      h("div", { class: "buttons" }, h("button", { type: "button", class: "secondary", onclick: () => show(null) }, "Close")));

    section.append(h("h1", { id: "webhooks-title" }, "Webhooks"), created, notice, table, empty, detail, create);

    const failed = (what, error) => {
      notice.textContent = `${what} failed: ${error.message}${error.code ? ` (${error.code})` : ""}.`;
    };

    async function copy() {
      try {
        await navigator.clipboard.writeText(secret.value);
        copied.textContent = "Copied to the clipboard.";
      } catch {
        secret.select();
        copied.textContent = "Selected: press Ctrl+C (⌘C) to copy it.";
      }
    }

    async function submit(event) {
      event.preventDefault();
      notice.textContent = "";
      const fields = { url: url.value.trim(), events: list(events.value), sessions: list(sessions.value),
        description: description.value.trim() };
      try {
        const result = await gw.call("webhook.create", fields);
        secret.value = result.secret;
        copied.textContent = "";
        created.hidden = false;
        secret.focus();
        secret.select();
        url.value = events.value = sessions.value = description.value = "";
        await load();
      } catch (error) {
        failed("Creating the endpoint", error);
      }
    }

    async function act(what, run) {
      notice.textContent = "";
      try {
        await run();
      } catch (error) {
        failed(what, error);
      }
      await load();
    }

    function state(info) {
      if (!info.enabled) {
        const why = info.disabled_reason === "gone" ? "the receiver answered 410 Gone"
          : info.disabled_reason === "failing" ? "every attempt failed for too long" : "disabled from here";
        return [h("span", { class: "badge status-failed" }, "disabled"), h("span", { class: "detail" }, why)];
      }
      if (info.failing_since) {
        return [h("span", { class: "badge status-queued" }, "failing"),
          h("span", { class: "detail" }, `since ${fullDate(info.failing_since)}${info.last_error ? `: ${info.last_error}`
            : info.last_status ? `: HTTP ${info.last_status}` : ""}`)];
      }
      return [h("span", { class: "badge status-connected" }, "enabled"),
        info.last_status ? h("span", { class: "detail" }, `last answer HTTP ${info.last_status}`) : ""];
    }

    function row(info) {
      const id = info.webhook;
      const button = (label, onclick, cls) =>
        h("button", { type: "button", class: cls, "aria-label": `${label} ${info.url}`, onclick }, label);
      return h("tr", { "data-webhook": id },
        h("th", { scope: "row" }, h("span", { class: "url" }, info.url),
          info.description ? h("span", { class: "detail" }, info.description) : "",
          h("span", { class: "detail" }, h("code", {}, id))),
        h("td", { "data-label": "Events" }, info.events?.length ? info.events.join(", ") : "all"),
        h("td", { "data-label": "Sessions" }, info.sessions?.length ? info.sessions.join(", ") : "all"),
        h("td", { "data-label": "State" }, state(info)),
        h("td", { "data-label": "Delivery" }, `after seq ${info.cursor}, ${info.pending} pending`),
        h("td", { "data-label": "Actions" }, h("div", { class: "actions" },
          button("Test", () => act(`Testing ${info.url}`, async () => {
            const result = await gw.call("webhook.test", { webhook: id });
            notice.textContent = result.ok
              ? `Ping to ${info.url}: HTTP ${result.status} in ${Math.round(result.latency_ms)} ms.`
              : `Ping to ${info.url} failed: ${result.error || `HTTP ${result.status}`}.`;
          })),
          button("Deliveries", () => show(id)),
          info.enabled
            ? button("Disable", () => act(`Disabling ${info.url}`, () => gw.call("webhook.update", { webhook: id, enabled: false })))
            : button("Enable", () => act(`Enabling ${info.url}`, () => gw.call("webhook.update", { webhook: id, enabled: true }))),
          button("Delete", async () => {
            const question = `Delete the endpoint ${info.url}? It receives nothing more; its dead letters are removed.`;
            if (!(await confirmAction(question, "Delete"))) return;
            if (open === id) show(null);
            await act(`Deleting ${info.url}`, () => gw.call("webhook.delete", { webhook: id }));
          }, "danger"))));
    }

    function render() {
      const focused = document.activeElement?.closest?.("tr[data-webhook]") && document.activeElement.getAttribute("aria-label");
      body.replaceChildren(...hooks.map(row));
      if (focused) body.querySelector(`button[aria-label="${CSS.escape(focused)}"]`)?.focus();
      table.hidden = !hooks.length;
      empty.hidden = hooks.length > 0;
    }

    let loading = null;
    function load() {
      loading ??= (async () => {
        try {
          hooks = (await gw.call("webhook.list")).webhooks;
          render();
          if (open) await loadDetail();
        } finally {
          loading = null;
        }
      })().catch(() => {}); // offline for a moment: the next refresh reads it
      return loading;
    }

    // -- deliveries of one endpoint
    function show(id) {
      open = id;
      detail.hidden = !id;
      if (id) loadDetail().then(() => detailTitle.scrollIntoView?.({ block: "nearest" }));
    }

    async function loadDetail() {
      const id = open;
      const info = hooks.find((hook) => hook.webhook === id);
      if (!info) { show(null); return; }
      detailTitle.textContent = `Deliveries to ${info.url}`;
      const [{ attempts }, { dead_letters: dead }] = await Promise.all([
        gw.call("webhook.attempts", { webhook: id, limit: ATTEMPTS_SHOWN }),
        gw.call("webhook.dead_letters", { webhook: id }),
      ]);
      if (open !== id) return;
      attemptsBody.replaceChildren(...attempts.map((a) => h("tr", { "data-outcome": a.outcome },
        h("td", { "data-label": "When" }, h("time", { datetime: new Date(a.at * 1000).toISOString(), title: fullDate(a.at) }, clock(a.at))),
        h("td", { "data-label": "Seq", class: "number" }, a.outcome === "ping" ? "—" : String(a.seq)),
        h("td", { "data-label": "Event" }, a.event),
        h("td", { "data-label": "Attempt", class: "number" }, String(a.attempt)),
        h("td", { "data-label": "Outcome" }, h("span", { class: `badge ${a.outcome === "delivered" || (a.outcome === "ping" && a.status && a.status < 300)
          ? "status-connected" : a.outcome === "retry" ? "status-queued" : "status-failed"}` }, a.outcome)),
        h("td", { "data-label": "Status" }, a.status ? String(a.status) : "—"),
        h("td", { "data-label": "Time", class: "number" }, `${Math.round(a.latency_ms)} ms`),
        h("td", { "data-label": "Error", class: "detail-cell" }, a.error || ""))));
      attemptsBody.parentElement.hidden = !attempts.length;
      noAttempts.hidden = attempts.length > 0;
      deadBody.replaceChildren(...dead.map((d) => h("tr", { "data-seq": String(d.seq) },
        h("td", { "data-label": "Seq", class: "number" }, String(d.seq)),
        h("td", { "data-label": "Event" }, d.event),
        h("td", { "data-label": "Session" }, d.session),
        h("td", { "data-label": "Attempts", class: "number" }, String(d.attempts)),
        h("td", { "data-label": "Status" }, d.status ? String(d.status) : "—"),
        h("td", { "data-label": "Error", class: "detail-cell" }, d.error || ""),
        h("td", { "data-label": "Dead since" }, fullDate(d.dead_at)),
        h("td", { "data-label": "Actions" }, d.redeliver ? h("span", { class: "detail" }, "queued to send again")
          : h("button", { type: "button", "aria-label": `Redeliver ${d.seq}`, onclick: () => redeliver(d.seq) }, "Redeliver")))));
      deadBody.parentElement.hidden = !dead.length;
      noDead.hidden = dead.length > 0;
      redeliverAll.hidden = dead.filter((d) => !d.redeliver).length < 2;
      fromSeq.placeholder = `e.g. ${Math.max(1, info.cursor - 9)}`;
    }

    async function redeliver(seq) {
      const id = open;
      await act("Redelivering", async () => {
        const { queued } = await gw.call("webhook.redeliver", seq === null ? { webhook: id } : { webhook: id, seq });
        notice.textContent = `${queued} dead letter${queued === 1 ? "" : "s"} queued to send again.`;
      });
    }

    async function replay(event) {
      event.preventDefault();
      const id = open;
      const seq = Number(fromSeq.value);
      await act("Replaying", async () => {
        const info = await gw.call("webhook.replay", { webhook: id, from_seq: seq });
        notice.textContent = `Replaying from seq ${seq}: ${info.pending} event${info.pending === 1 ? "" : "s"} to send.`;
      });
    }

    gw.addEventListener("event", (event) => {
      if (event.detail.event === "webhook.disabled") load();
    });
    ctx.every(LIST_REFRESH_MS, () => {
      if (!section.hidden && document.visibilityState === "visible" && gw.state === "live") load();
    });
    gw.addEventListener("ready", () => load());
    load();
  },
};
