// The dashboard's client of the WebSocket API, exactly as docs/protocol.md describes it: hello → auth → ready,
// commands with ids and one reply each, events with a per-tenant seq, and after a dropped connection a new one
// that resumes from the last seq seen (no event missed, none twice).
//
// Events dispatched: "state" (detail {state, retryAt}), "ready" (detail {frame, first, gap}), "event" (detail:
// the event frame), "signedout" (detail: a GatewayError, when the gateway refuses the token, e.g. revoked).

export const SUBPROTOCOL = "zapgate.v1";
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15000;
const PING_EVERY_MS = 25000;
const PING_TIMEOUT_MS = 10000;
const REFUSED = new Set([4400, 4401]); // the token or the auth frame is wrong: retrying cannot help

export class GatewayError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** The WebSocket URL of the gateway that served this page. */
export const pageGatewayUrl = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;

export class Gateway extends EventTarget {
  constructor(token, url = pageGatewayUrl()) {
    super();
    this.url = url;
    this.token = token; // in memory only; the page keeps it in sessionStorage, never in a URL or cookie
    this.ready = null; // the latest ready frame
    this.lastSeq = null; // the newest event seq received: where a new connection resumes from
    this.clockOffset = 0; // server clock minus this browser's, in seconds
    this.maxFrameBytes = 65536; // the largest frame the gateway accepts (its hello says)
    this.state = "idle";
    this._ws = null;
    this._pending = new Map();
    this._ids = 0;
    this._retries = 0;
    this._timer = null;
    this._pinger = null;
    this._stopped = false;
    this._first = null;
    this._online = () => { if (this.state === "reconnecting") this._reconnectNow(); };
    addEventListener("online", this._online);
  }

  /** Connect and authenticate; resolves with the ready frame or rejects with a GatewayError. */
  start() {
    return new Promise((resolve, reject) => {
      this._first = { resolve, reject };
      this._connect();
    });
  }

  /** Close for good (signing out). */
  stop() {
    this._stopped = true;
    removeEventListener("online", this._online);
    clearTimeout(this._timer);
    clearInterval(this._pinger);
    const ws = this._ws;
    this._ws = null;
    this._failPending(ws, new GatewayError("signed_out", "signed out"));
    if (ws) ws.close(1000);
    this._setState("closed");
  }

  /** The gateway's clock, in epoch seconds. */
  now() {
    return Date.now() / 1000 + this.clockOffset;
  }

  /** Run a command; resolves with its reply's data, rejects with a GatewayError carrying the error code. */
  call(type, fields = {}) {
    if (this.state !== "live") {
      return Promise.reject(new GatewayError("not_connected", "not connected to the gateway (reconnecting)"));
    }
    const id = String(++this._ids);
    const ws = this._ws;
    const frame = JSON.stringify({ type, id, ...fields });
    const size = new TextEncoder().encode(frame).length;
    if (size > this.maxFrameBytes) { // the gateway would close the connection (1009): refuse it here
      const message = `too large for one frame: ${size} bytes, the gateway takes at most ${this.maxFrameBytes}`;
      return Promise.reject(new GatewayError("frame_too_large", message));
    }
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject, ws });
      ws.send(frame);
    });
  }

  _connect() {
    const ws = new WebSocket(this.url, SUBPROTOCOL);
    this._ws = ws;
    let refusal = null; // an error frame, which comes just before the gateway closes
    this._setState(this.ready ? "reconnecting" : "connecting");
    ws.onmessage = (message) => {
      if (ws !== this._ws) return;
      const frame = JSON.parse(message.data);
      if (frame.type === "hello") {
        this.maxFrameBytes = frame.max_frame_bytes;
        const auth = { type: "auth", token: this.token };
        if (this.lastSeq !== null) auth.resume_from = this.lastSeq;
        ws.send(JSON.stringify(auth));
      } else if (frame.type === "ready") {
        this._onReady(frame);
      } else if (frame.type === "reply") {
        const pending = this._pending.get(frame.id);
        if (!pending) return;
        this._pending.delete(frame.id);
        if (frame.ok) pending.resolve(frame.data);
        else pending.reject(new GatewayError(frame.error.code, frame.error.message));
      } else if (frame.type === "event") {
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return;
        this.lastSeq = frame.seq;
        this.dispatchEvent(new CustomEvent("event", { detail: frame }));
      } else if (frame.type === "error") {
        refusal = frame;
      }
    };
    ws.onclose = (event) => {
      if (ws === this._ws) this._onClose(ws, event.code, refusal);
    };
  }

  _onReady(frame) {
    const first = this.ready === null;
    const gap = frame.resume === "gap";
    this.ready = frame;
    this._retries = 0;
    if (this.lastSeq === null || gap) this.lastSeq = frame.last_seq;
    this._setState("live");
    this._startPinger();
    this._measureClock();
    this.dispatchEvent(new CustomEvent("ready", { detail: { frame, first, gap } }));
    if (this._first) {
      this._first.resolve(frame);
      this._first = null;
    }
  }

  _onClose(ws, code, refusal) {
    clearInterval(this._pinger);
    this._ws = null;
    this._failPending(ws, new GatewayError("connection_lost", "the connection to the gateway dropped"));
    if (this._stopped) return;
    if (REFUSED.has(code) || refusal?.code === "unauthorized") {
      const error = new GatewayError(refusal?.code || "unauthorized", refusal?.message || "the gateway refused the token");
      this._giveUp(error);
      if (!this._first) this.dispatchEvent(new CustomEvent("signedout", { detail: error }));
      return;
    }
    if (!this.ready) { // never got in: say so rather than retry behind the user's back
      this._giveUp(new GatewayError("unreachable", `cannot reach the gateway at ${this.url}`));
      return;
    }
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this._retries++) * (0.5 + Math.random() / 2);
    this._setState("reconnecting", Date.now() + delay);
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _giveUp(error) {
    this._stopped = true;
    removeEventListener("online", this._online);
    this._setState("closed");
    if (this._first) {
      this._first.reject(error);
      this._first = null;
    }
  }

  _reconnectNow() {
    clearTimeout(this._timer);
    this._connect();
  }

  _failPending(ws, error) {
    for (const [id, pending] of this._pending) {
      if (pending.ws !== ws) continue;
      this._pending.delete(id);
      pending.reject(error);
    }
  }

  // A connection whose network vanished without a close can look open for minutes: a ping that gets no
  // answer in time abandons it and starts a new one (which resumes).
  _startPinger() {
    clearInterval(this._pinger);
    this._pinger = setInterval(() => {
      const ws = this._ws;
      const timeout = setTimeout(() => {
        if (ws !== this._ws) return;
        this._onClose(ws, 1006, null);
        ws.close();
      }, PING_TIMEOUT_MS);
      this._keepalive().then(() => clearTimeout(timeout), () => clearTimeout(timeout));
    }, PING_EVERY_MS);
  }

  // `ping` needs no scope: every token may run it, the admin token given at start-up included.
  _keepalive() {
    return this.call("ping");
  }

  async _measureClock() {
    try {
      const sent = Date.now();
      const { time } = await this.call("ping");
      this.clockOffset = time - (sent + Date.now()) / 2000;
    } catch {
      // keep the previous estimate
    }
  }

  _setState(state, retryAt = null) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryAt } }));
  }
}
