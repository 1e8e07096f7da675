// The Tokens view (admin scope): the tokens of a tenant (ids, scopes, sessions, state; never their secrets),
// create one (scopes, sessions, expiry; the token is shown this once, with a copy button) and revoke one.

import { confirmAction, fullDate, h, tokenId } from "./dom.js";

const SCOPES = [
  { scope: "tenant", says: "everything within the tenant: sessions, messages" },
  { scope: "send", says: "send messages and read events" },
  { scope: "read", says: "read events and sessions" },
  { scope: "admin", says: "tenants, tokens and the audit log of every tenant" },
];
const EXPIRY = [["", "Never"], ["3600", "In 1 hour"], ["86400", "In 1 day"], ["604800", "In 7 days"],
  ["2592000", "In 30 days"], ["7776000", "In 90 days"], ["31536000", "In 1 year"]];
const SESSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export default {
  id: "tokens",
  title: "Tokens",
  scope: "admin",
  mount(ctx, section) {
    const { gw, tenants } = ctx;
    const own = tokenId(gw.token);
    let tenant = ctx.tenant || ""; // the tenant whose tokens are shown
    const notice = h("p", { class: "notice", role: "status" });

    const picker = h("select", { id: "tokens-tenant", onchange: () => { tenant = picker.value; load(); } });
    const label = h("input", { id: "new-token-label", maxlength: "200", autocomplete: "off", placeholder: "e.g. CRM bot" });
    const boxes = SCOPES.map(({ scope, says }) => {
      const box = h("input", { type: "checkbox", id: `new-token-scope-${scope}`, value: scope, checked: scope === "tenant" });
      return { box, item: h("div", { class: "check" }, box,
        h("label", { for: `new-token-scope-${scope}` }, h("b", {}, scope), ` — ${says}`)) };
    });
    const sessionsInput = h("input", { id: "new-token-sessions", autocomplete: "off", placeholder: "e.g. sales-1, sales-2",
      "aria-describedby": "new-token-sessions-hint" });
    const expiry = h("select", { id: "new-token-expiry" },
      EXPIRY.map(([value, text]) => h("option", { value }, text)));
    const createTitle = h("h2", { id: "new-token-title" }, "New token");
    const create = h("form", { class: "stacked card", "aria-labelledby": "new-token-title", onsubmit: submit },
      createTitle,
      h("label", { for: "new-token-label" }, "Label"), label,
      h("fieldset", {}, h("legend", {}, "Scopes"), boxes.map((b) => b.item)),
      h("label", { for: "new-token-sessions" }, "Limit to sessions"), sessionsInput,
      h("p", { class: "hint", id: "new-token-sessions-hint" },
        "Session names separated by commas; empty: every session of the tenant."),
      h("label", { for: "new-token-expiry" }, "Expires"), expiry,
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Create token")));

    // The new token, shown once: only its hash is stored, so it cannot be shown again.
    const secret = h("input", { id: "created-token", readonly: true, spellcheck: "false", autocomplete: "off" });
    const copied = h("span", { role: "status", class: "hint" });
    const created = h("div", { class: "created card", role: "region", "aria-labelledby": "created-token-title", hidden: true },
      h("h2", { id: "created-token-title" }, "Token created"),
      h("p", {}, "Copy it now: it is shown only this once (the gateway keeps only its hash)."),
      h("label", { for: "created-token" }, "New token"),
      h("div", { class: "inline" }, secret,
        h("button", { type: "button", onclick: copy }, "Copy"),
        h("button", { type: "button", class: "secondary", onclick: () => hideCreated() }, "Done")),
      copied);

    const body = h("tbody");
    const table = h("table", { class: "grid" },
      h("caption", { class: "visually-hidden" }, "Tokens of the tenant"),
      h("thead", {}, h("tr", {}, ["Token", "Label", "Scopes", "Sessions", "State", "Created", "Expires", "Actions"]
        .map((title) => h("th", { scope: "col" }, title)))),
      body);
    const empty = h("p", { class: "empty" }, "No tokens for this tenant yet.");
    const noTenant = h("p", { class: "empty", hidden: true }, "There are no tenants yet: create one in Tenants first.");
    section.append(h("h1", { id: "tokens-title" }, "Tokens"),
      h("div", { class: "filters" }, h("label", { for: "tokens-tenant" }, "Tenant"), picker),
      noTenant, created, notice, table, empty, create);

    function hideCreated() {
      secret.value = "";
      copied.textContent = "";
      created.hidden = true;
    }

    async function copy() {
      try {
        await navigator.clipboard.writeText(secret.value);
        copied.textContent = "Copied to the clipboard.";
      } catch {
        secret.select(); // a page without clipboard access (or a browser that asks): let the person copy it
        copied.textContent = "Selected: press Ctrl+C (⌘C) to copy it.";
      }
    }

    async function submit(event) {
      event.preventDefault();
      notice.textContent = "";
      const scopes = boxes.filter((b) => b.box.checked).map((b) => b.box.value);
      const sessions = sessionsInput.value.split(/[\s,]+/).filter(Boolean);
      if (!scopes.length) {
        notice.textContent = "Choose at least one scope.";
        return;
      }
      const wrong = sessions.find((name) => !SESSION_NAME.test(name));
      if (wrong) {
        notice.textContent = `"${wrong}" is not a session name (1-64 letters, digits, '.', '_' or '-').`;
        return;
      }
      const fields = { tenant, scopes, label: label.value.trim() };
      if (sessions.length) fields.sessions = sessions;
      if (expiry.value) fields.expires_in = Number(expiry.value);
      try {
        const result = await gw.call("token.create", fields);
        secret.value = result.token;
        copied.textContent = "";
        created.hidden = false;
        secret.focus();
        secret.select();
        label.value = sessionsInput.value = "";
        await load();
      } catch (error) {
        notice.textContent = `Creating a token failed: ${error.message}${error.code ? ` (${error.code})` : ""}.`;
      }
    }

    function row(info) {
      const id = info.token_id;
      const revoke = info.state !== "active" ? "" : h("button", { type: "button", class: "danger",
        "aria-label": `Revoke ${id}`, onclick: async () => {
          const question = id === own
            ? `Revoke ${id}? It is the token this page signed in with: the page will sign out.`
            : `Revoke ${id}${info.label ? ` (${info.label})` : ""}? It is refused from now on and its connections close.`;
          if (!(await confirmAction(question, "Revoke"))) return;
          try {
            await gw.call("token.revoke", { token_id: id });
            notice.textContent = `Token ${id} revoked.`;
          } catch (error) {
            notice.textContent = `Revoking ${id} failed: ${error.message}.`;
          }
          load();
        } }, "Revoke");
      const badge = { active: "status-connected", expired: "status-queued", revoked: "status-failed" }[info.state];
      return h("tr", { "data-token": id },
        h("th", { scope: "row" }, h("code", {}, id), id === own ? h("span", { class: "detail" }, "this page's token") : ""),
        h("td", { "data-label": "Label" }, info.label || "—"),
        h("td", { "data-label": "Scopes" }, info.scopes.join(", ")),
        h("td", { "data-label": "Sessions" }, info.sessions ? info.sessions.join(", ") : "all"),
        h("td", { "data-label": "State" }, h("span", { class: `badge ${badge}` }, info.state),
          info.revoked_at ? h("span", { class: "detail" }, fullDate(info.revoked_at)) : ""),
        h("td", { "data-label": "Created" }, fullDate(info.created_at)),
        h("td", { "data-label": "Expires" }, info.expires_at ? fullDate(info.expires_at) : "never"),
        h("td", { "data-label": "Actions" }, h("div", { class: "actions" }, revoke)));
    }

    let loading = 0;
    async function load() {
      const mine = ++loading;
      if (!tenant) {
        body.replaceChildren();
        table.hidden = empty.hidden = true;
        return;
      }
      try {
        const { tokens } = await gw.call("token.list", { tenant });
        if (mine !== loading) return; // another tenant was picked meanwhile
        body.replaceChildren(...tokens.sort((a, b) => b.created_at - a.created_at).map(row));
        empty.hidden = tokens.length > 0;
        table.hidden = tokens.length === 0;
      } catch (error) {
        if (mine === loading) notice.textContent = `Reading the tokens failed: ${error.message}.`;
      }
    }

    function fillTenants() {
      const names = tenants.names;
      if (!names.includes(tenant)) tenant = names[0] || "";
      picker.replaceChildren(...names.map((name) => h("option", { value: name }, name)));
      picker.value = tenant;
      createTitle.textContent = tenant ? `New token for ${tenant}` : "New token";
      noTenant.hidden = names.length > 0;
      create.hidden = !tenant;
      picker.disabled = !names.length;
    }

    ctx.showTokensOf = (name) => {
      tenant = name;
      hideCreated();
      fillTenants();
      load();
    };
    let known = null;
    tenants.addEventListener("change", () => { // every few seconds: redraw only when the names changed
      const names = tenants.names.join(",");
      if (names === known) return;
      known = names;
      fillTenants();
      load();
    });
    ctx.onShow("tokens", load);
    fillTenants();
  },
};
