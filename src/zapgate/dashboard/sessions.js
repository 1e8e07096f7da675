// The Sessions view: every session of the tenant, live, with what a person running many numbers checks first
// (status and why, phone, since when, queue, pacing), and the actions on them.

import { ago, confirmAction, fullDate, h, phone } from "./dom.js";
import { openPairing } from "./pairing.js";
import { explain } from "./reasons.js";

const RUNNING = new Set(["starting", "qr", "connected", "disconnected"]);

export default {
  id: "sessions",
  title: "Sessions",
  scope: "read",
  mount(ctx, section) {
    const { gw, sessions } = ctx;
    // Creating, starting, stopping, logging out and deleting sessions need the tenant scope: a read or send
    // token sees the list without those buttons, and a line saying why.
    const manage = ctx.can("tenant");
    const notice = h("p", { class: "notice", role: "status" });
    const nameInput = h("input", {
      id: "new-session", name: "session", required: true, maxlength: "64", autocomplete: "off",
      pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}", placeholder: "e.g. sales-1",
      title: "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
    });
    const create = h("form", { class: "inline", "aria-labelledby": "new-session-title", onsubmit: (event) => {
      event.preventDefault();
      const name = nameInput.value.trim();
      nameInput.value = "";
      openPairing(ctx, name, { start: true });
    } },
      h("h2", { id: "new-session-title", class: "inline-title" }, "New session"),
      h("label", { for: "new-session" }, "Session name"), nameInput,
      h("button", { type: "submit" }, "Create and pair"));

    const readOnly = h("p", { class: "hint", id: "sessions-scope" },
      `This token ${ctx.can("send") ? "may send messages and read" : "may only read"}: creating, pairing, starting, ` +
      "stopping, logging out and deleting sessions need a token with the tenant scope.");
    const limited = ctx.limitedTo
      ? h("p", { class: "hint" }, `This token is limited to ${ctx.limitedTo.join(", ")}.`) : "";

    const body = h("tbody");
    const empty = h("p", { class: "empty" }, "No sessions yet: create one above and pair a phone with it.");
    const table = h("table", { class: "sessions" },
      h("caption", { class: "visually-hidden" }, "Sessions of this tenant"),
      h("thead", {}, h("tr", {}, ["Session", "Status", "Phone", "Since", "Queued", "Pacing", manage && "Actions"]
        .filter(Boolean).map((title) => h("th", { scope: "col" }, title)))),
      body);
    if (!manage) empty.textContent = "No sessions yet.";
    section.append(h("h1", { id: "sessions-title" }, "Sessions"), manage ? create : readOnly, limited, notice, table,
      empty);

    const rows = new Map();
    const act = (verb, name, run) => async () => {
      notice.textContent = "";
      try {
        await run();
      } catch (error) {
        notice.textContent = `${verb} ${name} failed: ${error.message}`;
      }
    };

    function makeRow(name) {
      const call = (type) => gw.call(type, { session: name });
      const button = (label, verb, onclick, cls) =>
        h("button", { type: "button", class: cls, "aria-label": `${label} ${name}`, onclick: act(verb, name, onclick) }, label);
      const row = {
        tr: h("tr", { "data-session": name }),
        cells: {
          status: h("td", { "data-label": "Status" }),
          phone: h("td", { "data-label": "Phone" }),
          since: h("td", { "data-label": "Since", class: "since" }),
          queue: h("td", { "data-label": "Queued", class: "number" }),
          pacing: h("td", { "data-label": "Pacing" }),
        },
        buttons: {
          pair: button("Pair", "Pairing", async () => {
            const info = sessions.all.get(name);
            openPairing(ctx, name, { start: !RUNNING.has(info?.status) });
          }),
          start: button("Start", "Starting", () => call("session.start")),
          stop: button("Stop", "Stopping", () => call("session.stop")),
          logout: button("Log out", "Logging out", async () => {
            const question = `Log out ${name}? The phone unlinks this device; pairing again needs a new scan. ` +
              "Messages still queued will fail.";
            if (await confirmAction(question, "Log out")) await call("session.logout");
          }, "danger"),
          remove: button("Delete", "Deleting", async () => {
            const question = `Delete ${name}? It is logged out and everything stored for it is removed.`;
            if (await confirmAction(question, "Delete")) await call("session.delete");
          }, "danger"),
        },
      };
      const c = row.cells;
      row.tr.append(h("th", { scope: "row" }, name), c.status, c.phone, c.since, c.queue, c.pacing,
        manage && h("td", { "data-label": "Actions" }, h("div", { class: "actions" }, Object.values(row.buttons))));
      return row;
    }

    function fill(row, info) {
      const { cells, buttons } = row;
      const status = info.status || "stopped";
      cells.status.replaceChildren(
        h("span", { class: `badge status-${status}` }, status),
        info.reason ? h("span", { class: "reason", title: info.reason }, explain(info.reason)) : "",
        info.detail ? h("span", { class: "detail" }, info.detail) : "",
      );
      cells.phone.textContent = phone(info.me?.phone) || "—";
      const since = info.since ?? info.created_at;
      cells.since.replaceChildren(h("time", { datetime: new Date(since * 1000).toISOString(), title: fullDate(since),
        "data-since": String(since) }, `${ago(since, gw.now())} ago`));
      cells.queue.textContent = String(info.outbox?.queued ?? 0);
      const pacing = info.pacing;
      cells.pacing.textContent = !pacing ? "—"
        : pacing.paused_until ? `paused until ${new Date(pacing.paused_until * 1000).toLocaleTimeString()}` +
          ` (${explain(pacing.paused_reason)})`
        : pacing.enabled ? `${pacing.new_contacts_today}/${pacing.new_contacts_per_day} new contacts today` : "off";
      const running = RUNNING.has(status);
      buttons.pair.hidden = info.paired;
      buttons.start.hidden = !info.paired || running;
      buttons.stop.hidden = !running;
      buttons.logout.hidden = !info.paired;
    }

    function render(name) {
      const names = name === null ? sessions.names : [name];
      if (name === null) {
        for (const [known, row] of rows) if (!sessions.all.has(known)) { row.tr.remove(); rows.delete(known); }
      }
      for (const each of names) {
        const info = sessions.all.get(each);
        let row = rows.get(each);
        if (!info) {
          if (row) { row.tr.remove(); rows.delete(each); }
          continue;
        }
        if (!row) {
          row = makeRow(each);
          rows.set(each, row);
          const after = [...rows.keys()].sort().find((other) => other > each && rows.get(other).tr.isConnected);
          body.insertBefore(row.tr, after ? rows.get(after).tr : null);
        }
        fill(row, info);
      }
      empty.hidden = rows.size > 0;
      table.hidden = rows.size === 0;
    }

    sessions.addEventListener("change", (event) => render(event.detail));
    ctx.every(5000, () => { // keep "since" true
      for (const time of body.querySelectorAll("time[data-since]")) {
        time.textContent = `${ago(Number(time.dataset.since), gw.now())} ago`;
      }
    });
    render(null);
  },
};
