// The Audit view (admin scope): who changed what and when (docs/security.md, "Audit log"), newest first, a page
// at a time, of every tenant or of one.

import { fullDate, h } from "./dom.js";

const PAGE = 50;

export default {
  id: "audit",
  title: "Audit log",
  scope: "admin",
  mount(ctx, section) {
    const { gw, tenants } = ctx;
    let shown = []; // the entries of the page shown, oldest first (as audit.list gives them)
    let atNewest = true;
    let hasOlder = false;

    const picker = h("select", { id: "audit-tenant", onchange: () => newest() });
    const newestButton = h("button", { type: "button", onclick: () => newest() }, "Newest");
    const newerButton = h("button", { type: "button", onclick: () => page({ after: shown[shown.length - 1].id }) },
      "Newer");
    const olderButton = h("button", { type: "button", onclick: () => page({ before: shown[0].id }) }, "Older");
    const notice = h("p", { class: "notice", role: "status" });
    const count = h("p", { class: "count" });
    const body = h("tbody");
    const table = h("table", { class: "grid audit" },
      h("caption", { class: "visually-hidden" }, "Audit log entries, newest first"),
      h("thead", {}, h("tr", {}, ["#", "When", "Token", "Tenant", "Session", "Command", "Outcome", "Detail"]
        .map((title) => h("th", { scope: "col" }, title)))),
      body);
    const empty = h("p", { class: "empty", hidden: true }, "No entries.");
    section.append(h("h1", { id: "audit-title" }, "Audit log"),
      h("p", { class: "hint" }, "Every change made through the gateway (not reads), and every refusal for a missing scope."),
      h("div", { class: "filters" }, h("label", { for: "audit-tenant" }, "Tenant"), picker,
        newestButton, newerButton, olderButton),
      notice, count, table, empty);

    const filter = () => (picker.value ? { tenant: picker.value } : {});

    // One entry more than a page is read, to know whether there is a page beyond it.
    async function page(where) {
      notice.textContent = "";
      try {
        const { entries } = await gw.call("audit.list", { ...filter(), ...where, limit: PAGE + 1 });
        const forward = where.after !== undefined;
        const more = entries.length > PAGE;
        const kept = !more ? entries : forward ? entries.slice(0, PAGE) : entries.slice(1);
        if (!kept.length && where.after !== undefined) { // nothing newer: stay on the page shown
          atNewest = true;
          draw();
          return;
        }
        if (!kept.length && where.before !== undefined) return;
        shown = kept;
        atNewest = where.before === undefined && !(forward && more);
        hasOlder = forward || more;
        draw();
      } catch (error) {
        notice.textContent = `Reading the audit log failed: ${error.message}.`;
      }
    }

    const newest = () => page({});

    function draw() {
      body.replaceChildren(...[...shown].reverse().map((e) => h("tr", { "data-entry": String(e.id) },
        h("td", { "data-label": "#", class: "number" }, String(e.id)),
        h("td", { "data-label": "When" }, fullDate(e.ts)),
        h("td", { "data-label": "Token" }, e.token_id ? h("code", {}, e.token_id) : "—"),
        h("td", { "data-label": "Tenant" }, e.tenant || "—"),
        h("td", { "data-label": "Session" }, e.session || "—"),
        h("td", { "data-label": "Command" }, h("code", {}, e.command)),
        h("td", { "data-label": "Outcome" }, h("span", { class: `badge ${e.outcome === "ok" ? "status-connected" : "status-failed"}` },
          e.outcome)),
        h("td", { "data-label": "Detail", class: "detail-cell" }, e.detail || ""))));
      table.hidden = !shown.length;
      empty.hidden = shown.length > 0;
      count.textContent = shown.length
        ? `Entries ${shown[0].id} to ${shown[shown.length - 1].id}${atNewest ? " (the newest)" : ""}` : "";
      olderButton.disabled = !hasOlder || !shown.length;
      newerButton.disabled = atNewest || !shown.length;
    }

    let known = null;
    tenants.addEventListener("change", () => {
      const names = tenants.names.join(",");
      if (names === known) return;
      known = names;
      const chosen = picker.value;
      picker.replaceChildren(h("option", { value: "" }, "All tenants"),
        ...tenants.names.map((name) => h("option", { value: name }, name)));
      picker.value = tenants.names.includes(chosen) ? chosen : "";
    });
    picker.append(h("option", { value: "" }, "All tenants"));
    // Read when the view is opened (the log grows with every change: the newest page then).
    ctx.onShow("audit", newest);
    draw();
  },
};
