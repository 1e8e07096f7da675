// The Tenants view (admin scope): every tenant with its state, its quotas and what it uses of them; create one,
// change its quotas, disable and enable it, and go to its tokens.

import { bytes, confirmAction, fullDate, h } from "./dom.js";

const QUOTAS = [
  { field: "max_sessions", usage: "sessions", title: "Sessions", label: "Max sessions", show: String },
  { field: "max_queued_messages", usage: "queued_messages", title: "Queued messages", label: "Max queued messages",
    show: String },
  { field: "max_queued_bytes", usage: "queued_bytes", title: "Queued bytes", label: "Max queued bytes", show: bytes },
];

/** Number inputs for the three quotas (empty: the gateway's default), with ids made from `prefix`. */
function quotaInputs(prefix, own = {}) {
  return QUOTAS.map((quota) => ({
    quota,
    label: h("label", { for: `${prefix}-${quota.field}` }, quota.label),
    input: h("input", { id: `${prefix}-${quota.field}`, type: "number", min: "0", step: "1", inputmode: "numeric",
      placeholder: "default", value: own[quota.field] ?? "" }),
  }));
}

/** {max_sessions: 3, …} from quota inputs; an empty one is null (the default) when `nullForEmpty`, else left out. */
function quotaFields(inputs, nullForEmpty) {
  const fields = {};
  for (const { quota, input } of inputs) {
    if (input.value.trim() !== "") fields[quota.field] = Number(input.value);
    else if (nullForEmpty) fields[quota.field] = null;
  }
  return fields;
}

export default {
  id: "tenants",
  title: "Tenants",
  scope: "admin",
  mount(ctx, section) {
    const { gw, tenants } = ctx;
    const notice = h("p", { class: "notice", role: "status" });
    const nameInput = h("input", { id: "new-tenant", required: true, maxlength: "63", autocomplete: "off",
      pattern: "[a-z0-9][a-z0-9_\\-]{0,62}", placeholder: "e.g. acme",
      title: "1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit" });
    const newQuotas = quotaInputs("new-tenant");
    const create = h("form", { class: "stacked card", "aria-labelledby": "new-tenant-title", onsubmit: async (event) => {
      event.preventDefault();
      const tenant = nameInput.value.trim();
      await act(`Creating ${tenant}`, async () => {
        await gw.call("tenant.create", { tenant, ...quotaFields(newQuotas, false) });
        nameInput.value = "";
        for (const { input } of newQuotas) input.value = "";
        notice.textContent = `Tenant ${tenant} created. Create a token for it in Tokens.`;
      });
    } },
      h("h2", { id: "new-tenant-title" }, "New tenant"),
      h("label", { for: "new-tenant" }, "Tenant name"), nameInput,
      h("div", { class: "quota-grid" }, newQuotas.map(({ label, input }) => h("div", {}, label, input))),
      h("p", { class: "hint" }, "An empty quota is the gateway's default; 0 is no limit."),
      h("div", { class: "buttons" }, h("button", { type: "submit" }, "Create tenant")));

    const body = h("tbody");
    const table = h("table", { class: "grid" },
      h("caption", { class: "visually-hidden" }, "Tenants"),
      h("thead", {}, h("tr", {}, ["Tenant", "State", ...QUOTAS.map((q) => q.title), "Created", "Actions"].map(
        (title) => h("th", { scope: "col" }, title)))),
      body);
    const empty = h("p", { class: "empty" }, "No tenants yet: create one below.");
    section.append(h("h1", { id: "tenants-title" }, "Tenants"), notice, table, empty, create);

    async function act(what, run) {
      notice.textContent = "";
      try {
        await run();
      } catch (error) {
        notice.textContent = `${what} failed: ${error.message}${error.code ? ` (${error.code})` : ""}.`;
      }
      tenants.load().catch(() => {});
    }

    function editQuotas(info) {
      const inputs = quotaInputs("edit-quota", info.own_quotas);
      const dialog = h("dialog", { "aria-labelledby": "edit-quota-title" },
        h("form", { class: "stacked", onsubmit: async (event) => {
          event.preventDefault();
          dialog.close();
          await act(`Changing the quotas of ${info.tenant}`, async () => {
            await gw.call("tenant.update", { tenant: info.tenant, ...quotaFields(inputs, true) });
            notice.textContent = `Quotas of ${info.tenant} saved.`;
          });
        } },
          h("h2", { id: "edit-quota-title" }, `Quotas of ${info.tenant}`),
          inputs.flatMap(({ label, input }) => [label, input]),
          h("p", { class: "hint" }, "Empty: the gateway's default; 0: no limit."),
          h("div", { class: "buttons" },
            h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"),
            h("button", { type: "submit" }, "Save quotas"))));
      dialog.addEventListener("close", () => dialog.remove());
      document.body.append(dialog);
      dialog.showModal();
    }

    function row(info) {
      const name = info.tenant;
      const button = (label, onclick, cls) =>
        h("button", { type: "button", class: cls, "aria-label": `${label} ${name}`, onclick }, label);
      const toggle = info.disabled
        ? button("Enable", () => act(`Enabling ${name}`, () => gw.call("tenant.enable", { tenant: name })))
        : button("Disable", async () => {
          const question = `Disable ${name}? Its tokens are refused, its connections closed and its sessions ` +
            "stopped (their pairing is kept). Enable it again at any time.";
          if (await confirmAction(question, "Disable")) {
            await act(`Disabling ${name}`, () => gw.call("tenant.disable", { tenant: name }));
          }
        }, "danger");
      return h("tr", { "data-tenant": name },
        h("th", { scope: "row" }, name),
        h("td", { "data-label": "State" }, h("span", { class: `badge ${info.disabled ? "status-failed" : "status-connected"}` },
          info.disabled ? "disabled" : "active"),
        info.disabled_at ? h("span", { class: "detail" }, `since ${fullDate(info.disabled_at)}`) : ""),
        QUOTAS.map((quota) => {
          const used = info.usage[quota.usage];
          const limit = info.quotas[quota.field];
          const own = info.own_quotas[quota.field] !== undefined;
          return h("td", { "data-label": quota.title, "data-quota": quota.field, class: "number",
            title: own ? "this tenant's own quota" : "the gateway's default" },
          `${quota.show(used)} / ${limit ? quota.show(limit) : "no limit"}${own ? "" : " (default)"}`);
        }),
        h("td", { "data-label": "Created" }, fullDate(info.created_at)),
        h("td", { "data-label": "Actions" }, h("div", { class: "actions" },
          button("Quotas", () => editQuotas(info)),
          button("Tokens", () => { ctx.showTokensOf?.(name); location.hash = "#tokens"; }),
          toggle)));
    }

    function render() {
      // Keep the focus on the same button when the list is drawn again (it is every few seconds).
      const focused = document.activeElement?.closest?.("tr[data-tenant]") && document.activeElement.getAttribute("aria-label");
      body.replaceChildren(...tenants.all.map(row));
      if (focused) body.querySelector(`button[aria-label="${CSS.escape(focused)}"]`)?.focus();
      empty.hidden = tenants.all.length > 0;
      table.hidden = tenants.all.length === 0;
    }

    tenants.addEventListener("change", render);
    render();
  },
};
