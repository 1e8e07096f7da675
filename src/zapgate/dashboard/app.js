// The dashboard: sign in with a token, then the views. Everything goes over the WebSocket API (gateway.js),
// as for any other client. The token is kept in this tab's sessionStorage (so a reload stays signed in) and
// nowhere else: never in a URL, never in a cookie.

import auditView from "./audit.js";
import { $, h } from "./dom.js";
import eventsView from "./events.js";
import { Gateway } from "./gateway.js";
import sendView from "./send.js";
import sessionsView from "./sessions.js";
import { Sessions, Tenants } from "./store.js";
import tenantsView from "./tenants.js";
import tokensView from "./tokens.js";
import webhooksView from "./webhooks.js";

// The views, in menu order: {id, title, scope, mount(ctx, section)}. A view is shown only to a token with its
// scope (the ready frame says which scopes the token has), and a `wholeTenant` view only to a token not limited to
// some sessions: the gateway would refuse the commands anyway.
const ALL_VIEWS = [sessionsView, eventsView, sendView, webhooksView, tenantsView, tokensView, auditView];
// What a gateway that does not say (zapgate before the ready frame had `scopes`) gave every token.
const OLD_SCOPES = ["read", "send", "tenant"];
const TOKEN_KEY = "zapgate.token";
const HISTORY = 100; // past events shown when the page opens
const LIST_REFRESH_MS = 5000;

let current = null; // the signed-in state: {gw, timers}
let views = []; // the views the signed-in token may use

function showSignIn(message = "") {
  $("#signin").hidden = false;
  $("#views").hidden = $("#nav").hidden = $("#whoami").hidden = true;
  $("#signin-message").textContent = message;
  $("#token").focus();
}

/** The latest events before the connection became ready (at most HISTORY), oldest first. */
async function history(gw, lastSeq) {
  if (lastSeq === 0) return [];
  let page = await gw.call("events.fetch", { after: Math.max(0, lastSeq - HISTORY), limit: HISTORY });
  if (page.gap && page.oldest_seq > 0) page = await gw.call("events.fetch", { after: page.oldest_seq - 1, limit: HISTORY });
  return page.events.filter((frame) => frame.seq <= lastSeq);
}

function showConnection({ state, retryAt }, note = "") {
  const el = $("#connection");
  el.dataset.state = state;
  el.textContent = state === "live" ? `● Live${note ? ` · ${note}` : ""}`
    : state === "reconnecting" ? (retryAt ? `Connection lost; reconnecting in ${Math.max(1, Math.round((retryAt - Date.now()) / 1000))} s…` : "Reconnecting…")
    : state === "connecting" ? "Connecting…" : "";
}

/** "read only", "admin", "3 sessions"…: what the token may do, for the header. */
function describeToken(scopes, limitedTo) {
  const parts = [];
  if (scopes.has("admin")) parts.push("admin");
  if (!scopes.has("tenant") && scopes.has("send")) parts.push("send and read only");
  else if (!scopes.has("tenant") && scopes.has("read")) parts.push("read only");
  if (limitedTo) parts.push(limitedTo.length === 1 ? `session ${limitedTo[0]} only` : `${limitedTo.length} sessions only`);
  return parts;
}

async function signIn(token) {
  const gw = new Gateway(token);
  const ready = await gw.start();
  sessionStorage.setItem(TOKEN_KEY, token);
  const scopes = new Set(ready.scopes || OLD_SCOPES);
  const can = (scope) => scopes.has(scope);
  const sessions = new Sessions(gw);
  const timers = [];
  const onShow = []; // [view id, function]: run each time that view is opened
  current = { gw, timers, onShow };
  const ctx = {
    gw,
    sessions,
    tenants: can("admin") ? new Tenants(gw) : null,
    can,
    limitedTo: ready.sessions || null,
    engine: ready.engine,
    tenant: ready.tenant,
    history: can("read") ? history(gw, ready.last_seq).catch(() => []) : Promise.resolve([]),
    every: (ms, fn) => timers.push(setInterval(fn, ms)),
    onShow: (id, fn) => onShow.push([id, fn]),
  };
  const loadLists = () => {
    if (can("read")) sessions.load().catch(() => {}); // on failure, the next reconnect reads it
    if (ctx.tenants) ctx.tenants.load().catch(() => {});
  };
  gw.addEventListener("event", (event) => sessions.onEvent(event.detail));
  gw.addEventListener("state", (event) => showConnection(event.detail));
  gw.addEventListener("ready", ({ detail: { first, gap, frame } }) => {
    if (first) return;
    loadLists(); // commands that were cut off (refreshes) are lost: read the lists again
    if (gap) {
      showConnection({ state: "live" }, "reconnected; missed events were too old to replay, lists reloaded");
    } else {
      showConnection({ state: "live" }, `reconnected, ${frame.replayed} missed event${frame.replayed === 1 ? "" : "s"} replayed`);
    }
  });
  gw.addEventListener("signedout", (event) => signOut(`Signed out: ${event.detail.message}.`));
  ctx.history.then((past) => { for (const frame of past) sessions.onEvent(frame, { live: false }); });
  // Queue lengths and pacing counters also change without an event of their own (a send accepted by another
  // client): read the list again now and then while the page is in sight.
  ctx.every(LIST_REFRESH_MS, () => {
    if (document.visibilityState === "visible" && gw.state === "live") loadLists();
  });

  const nav = $("#nav");
  const container = $("#views");
  views = ALL_VIEWS.filter((view) => can(view.scope) && !(view.wholeTenant && ctx.limitedTo));
  nav.replaceChildren(...views.map((view) => h("a", { href: `#${view.id}`, "data-view": view.id }, view.title)));
  container.replaceChildren();
  for (const view of views) {
    const section = h("section", { id: `view-${view.id}`, "aria-labelledby": `${view.id}-title` });
    container.append(section);
    view.mount(ctx, section);
  }
  $("#tenant").textContent = [ready.tenant || "all tenants", ready.engine, ...describeToken(scopes, ctx.limitedTo)]
    .join(" · ");
  $("#signin").hidden = true;
  container.hidden = nav.hidden = $("#whoami").hidden = false;
  showConnection({ state: gw.state });
  route();
  loadLists();
}

function signOut(message = "") {
  if (current) {
    current.gw.stop();
    current.timers.forEach(clearInterval);
    current = null;
  }
  sessionStorage.removeItem(TOKEN_KEY);
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  $("#views").replaceChildren();
  $("#nav").replaceChildren();
  views = [];
  showSignIn(message);
}

function route() {
  if (!views.length) return;
  const wanted = location.hash.slice(1);
  const id = views.some((view) => view.id === wanted) ? wanted : views[0].id;
  for (const view of views) {
    const section = $(`#view-${view.id}`);
    if (section) section.hidden = view.id !== id;
  }
  for (const link of $("#nav").querySelectorAll("a")) {
    if (link.dataset.view === id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [view, fn] of current?.onShow || []) if (view === id) fn();
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#token");
  const button = $("#signin-button");
  button.disabled = true;
  $("#signin-message").textContent = "";
  try {
    await signIn(input.value.trim());
    input.value = "";
  } catch (error) {
    $("#signin-message").textContent = error.code === "unauthorized"
      ? "That token is not valid, or it was revoked." : `Could not sign in: ${error.message}.`;
  } finally {
    button.disabled = false;
  }
});
$("#signout").addEventListener("click", () => signOut("Signed out."));
addEventListener("hashchange", route);

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  signIn(saved).catch((error) => {
    if (error.code === "unauthorized") signOut(`Signed out: ${error.message}.`);
    else showSignIn(`Could not reach the gateway (${error.message}); reload the page to try again.`);
  });
} else {
  showSignIn();
}
