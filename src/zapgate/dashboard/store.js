// The tenant's sessions as the page knows them: loaded with session.list, kept current by events, and refreshed
// with session.get after anything that changes what the list shows (status, queue, pacing). Dispatches
// "change" (detail: the session's name, or null when the whole list changed).

const REFRESH_DELAY_MS = 250;
const BUSY_REFRESH_DELAY_MS = 1000; // message statuses can come by the hundred: their queue counts can wait

export class Sessions extends EventTarget {
  constructor(gw) {
    super();
    this.gw = gw;
    this.all = new Map(); // name → session info (docs/protocol.md, "Session info")
    this.lastQr = new Map(); // name → the latest session.qr event, to show a pairing opened mid-way
    this._refreshing = new Map();
  }

  get names() {
    return [...this.all.keys()].sort();
  }

  async load() {
    const { sessions } = await this.gw.call("session.list");
    this.all = new Map(sessions.map((info) => [info.session, info]));
    this._changed(null);
  }

  /** Take an event (live, replayed or from history) into account. */
  onEvent(frame, { live = true } = {}) {
    const name = frame.session;
    const data = frame.data || {};
    if (frame.event === "session.qr") this.lastQr.set(name, frame);
    if (!live) return;
    if (frame.event === "session.deleted") {
      this.all.delete(name);
      this.lastQr.delete(name);
      this._changed(name);
      return;
    }
    if (frame.event === "session.status") {
      const info = this.all.get(name) || { session: name, paired: false, created_at: frame.ts };
      info.status = data.status;
      info.reason = data.reason;
      info.detail = data.detail;
      info.since = frame.ts;
      if (data.me) Object.assign(info, { me: data.me, paired: true });
      if (data.status === "logged_out") info.paired = false;
      if (data.status !== "qr") delete info.qr;
      this.all.set(name, info);
      this._changed(name);
    }
    if (frame.event.startsWith("session.")) this.refresh(name, REFRESH_DELAY_MS);
    else if (frame.event === "message.status") this.refresh(name, BUSY_REFRESH_DELAY_MS);
  }

  /** Ask the gateway for the session's full info soon (several events in a row make one request). */
  refresh(name, delay = REFRESH_DELAY_MS) {
    if (this._refreshing.has(name)) return;
    this._refreshing.set(name, setTimeout(async () => {
      this._refreshing.delete(name);
      try {
        this.all.set(name, await this.gw.call("session.get", { session: name }));
      } catch (error) {
        if (error.code !== "session_not_found") return; // offline for a moment: the next event refreshes it
        this.all.delete(name);
      }
      this._changed(name);
    }, delay));
  }

  _changed(name) {
    this.dispatchEvent(new CustomEvent("change", { detail: name }));
  }
}

// The gateway's tenants, for an admin token: loaded with tenant.list, shared by the Tenants, Tokens and Audit
// views. Dispatches "change" after each load.
export class Tenants extends EventTarget {
  constructor(gw) {
    super();
    this.gw = gw;
    this.all = []; // tenant info (docs/protocol.md, "Admin API"), by name
  }

  get names() {
    return this.all.map((info) => info.tenant);
  }

  async load() {
    const { tenants } = await this.gw.call("tenant.list");
    this.all = tenants;
    this.dispatchEvent(new CustomEvent("change"));
  }
}
