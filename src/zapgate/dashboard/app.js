// The dashboard: sign in with a token, then the views. Everything goes over the WebSocket API (gateway.js),
// as for any other client. The token is kept in this tab's sessionStorage (so a reload stays signed in) and
// nowhere else: never in a URL, never in a cookie.

import { $, h } from "./dom.js";
import eventsView from "./events.js";
import { Gateway } from "./gateway.js";
import sendView from "./send.js";
import sessionsView from "./sessions.js";
import { Sessions } from "./store.js";

// The views, in menu order: {id, title, mount(ctx, section)}. Views for webhooks, and for an admin's tenants
// and tokens, plug in here once the gateway has those commands.
const VIEWS = [sessionsView, eventsView, sendView];
const TOKEN_KEY = "zapgate.token";
const HISTORY = 100; // past events shown when the page opens
const LIST_REFRESH_MS = 5000;

let current = null; // the signed-in state: {gw, timers}

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

async function signIn(token) {
  const gw = new Gateway(token);
  const ready = await gw.start();
  sessionStorage.setItem(TOKEN_KEY, token);
  const sessions = new Sessions(gw);
  const timers = [];
  current = { gw, timers };
  const ctx = {
    gw,
    sessions,
    engine: ready.engine,
    tenant: ready.tenant,
    history: history(gw, ready.last_seq).catch(() => []),
    every: (ms, fn) => timers.push(setInterval(fn, ms)),
  };
  gw.addEventListener("event", (event) => sessions.onEvent(event.detail));
  gw.addEventListener("state", (event) => showConnection(event.detail));
  gw.addEventListener("ready", ({ detail: { first, gap, frame } }) => {
    if (first) return;
    sessions.load().catch(() => {}); // commands that were cut off (refreshes) are lost: read the list again
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
    if (document.visibilityState === "visible" && gw.state === "live") sessions.load().catch(() => {});
  });

  const nav = $("#nav");
  const views = $("#views");
  nav.replaceChildren(...VIEWS.map((view) => h("a", { href: `#${view.id}`, "data-view": view.id }, view.title)));
  views.replaceChildren();
  for (const view of VIEWS) {
    const section = h("section", { id: `view-${view.id}`, "aria-labelledby": `${view.id}-title` });
    views.append(section);
    view.mount(ctx, section);
  }
  $("#tenant").textContent = `${ready.tenant} · ${ready.engine}`;
  $("#signin").hidden = true;
  views.hidden = nav.hidden = $("#whoami").hidden = false;
  showConnection({ state: gw.state });
  route();
  sessions.load().catch(() => {}); // on failure, the next reconnect reads it
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
  showSignIn(message);
}

function route() {
  const wanted = location.hash.slice(1);
  const id = VIEWS.some((view) => view.id === wanted) ? wanted : VIEWS[0].id;
  for (const view of VIEWS) {
    const section = $(`#view-${view.id}`);
    if (section) section.hidden = view.id !== id;
  }
  for (const link of $("#nav").querySelectorAll("a")) {
    if (link.dataset.view === id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
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
