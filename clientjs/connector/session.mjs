// @ts-check
// The connector's session with the relay (softphone.v1, role "connector"): hello with a token
// from the page, the feed's items handed over once each and acked, requests sent and answered
// by their ack or nack, a heartbeat, a refresh before the token expires, and reconnects with
// backoff. Never the softphone's session: the relay keeps the two apart (README, "Salesforce
// Voice"). Where the feed stands survives a page reload (sessionStorage).

const SUBPROTOCOL = "softphone.v1";
/** Close codes after which reconnecting cannot help (bad hello, forbidden, replaced). */
const STOP_CODES = [4400, 4403, 4409];
/** How long a request waits for its ack before it is given up on. */
const REQUEST_WAIT_MS = 10000;

/**
 * @typedef {{url: string, token: () => Promise<string>, client?: string,
 *   storage?: Storage|null, storageKey?: string,
 *   onWelcome?: (config: any) => void, onItem?: (name: string, data: any) => void,
 *   onStop?: (code: number, reason: string) => void, WebSocket?: typeof WebSocket,
 *   random?: () => number}} SessionOptions
 */

/** The delay before reconnect attempt ``n`` (1, 2, ...): exponential, capped, jittered.
 * @param {number} n @param {number} r a random number in [0, 1) */
export function reconnectDelay(n, r) {
  const cap = Math.min(30000, 500 * 2 ** Math.min(n - 1, 6));
  return Math.round(cap / 2 + (cap / 2) * r);
}

export class RelaySession {
  /** @param {SessionOptions} options */
  constructor(options) {
    this.options = options;
    this.storage = options.storage === undefined ? null : options.storage;
    this.key = options.storageKey || "softphone-relay-connector";
    const kept = this.read();
    /** @type {string|null} the last feed item handed over (and acked) */
    this.last = kept.last || null;
    /** @type {WebSocket|null} */
    this.socket = null;
    this.state = "idle";
    this.attempt = 0;
    /** @type {Map<string, {resolve: (v: any) => void, reject: (e: Error) => void, timer: any}>} */
    this.pending = new Map();
    /** @type {Record<string, any>} */
    this.timers = {};
    this.heartbeatMs = 20000;
  }

  /** What the page kept of this session (and of the connector: ``extra``). */
  read() {
    try {
      return JSON.parse((this.storage && this.storage.getItem(this.key)) || "{}");
    } catch {
      return {};
    }
  }

  /** Keep the feed's position and the connector's ``extra`` state across a reload.
   * @param {any} [extra] */
  keep(extra) {
    if (!this.storage) return;
    const kept = this.read();
    if (extra !== undefined) kept.extra = extra;
    kept.last = this.last;
    try {
      this.storage.setItem(this.key, JSON.stringify(kept));
    } catch {
      /* storage full or blocked: the relay's own ack position still resumes the feed */
    }
  }

  start() {
    if (this.state !== "idle") return;
    this.connect();
  }

  stop() {
    this.state = "stopped";
    Object.keys(this.timers).forEach((name) => this.clear(name));
    for (const [, waiting] of this.pending) waiting.reject(new Error("the connector stopped"));
    this.pending.clear();
    if (this.socket) this.socket.close(1000, "logout");
    this.socket = null;
  }

  /** @param {string} name */
  clear(name) {
    clearTimeout(this.timers[name]);
    delete this.timers[name];
  }

  connect() {
    if (this.state === "stopped") return;
    this.state = "connecting";
    this.options.token().then(
      (token) => this.open(String(token)),
      () => this.retry()
    );
  }

  retry() {
    if (this.state === "stopped") return;
    this.state = "waiting";
    this.attempt += 1;
    const random = this.options.random || Math.random;
    const delay = reconnectDelay(this.attempt, random());
    this.timers.reconnect = setTimeout(() => this.connect(), delay);
  }

  /** @param {string} token */
  open(token) {
    if (this.state === "stopped") return;
    const Socket = this.options.WebSocket || WebSocket;
    const ws = new Socket(this.options.url, SUBPROTOCOL);
    this.socket = ws;
    ws.onopen = () =>
      ws.send(
        JSON.stringify({
          type: "hello",
          token,
          lastCommandId: this.last,
          client: this.options.client || "softphone-relay-connector/1",
          role: "connector",
        })
      );
    ws.onmessage = (message) => {
      if (ws !== this.socket) return;
      this.beat();
      let frame;
      try {
        frame = JSON.parse(String(message.data));
      } catch {
        return;
      }
      this.receive(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.socket) return;
      this.socket = null;
      ["ping", "deadline", "refresh"].forEach((name) => this.clear(name));
      for (const [, waiting] of this.pending) waiting.reject(new Error("the relay went away"));
      this.pending.clear();
      if (STOP_CODES.includes(event.code)) {
        this.state = "stopped";
        if (this.options.onStop) this.options.onStop(event.code, event.reason);
        return;
      }
      this.retry();
    };
  }

  beat() {
    this.clear("ping");
    this.clear("deadline");
    this.timers.ping = setTimeout(() => {
      this.send({ type: "ping" });
      this.timers.deadline = setTimeout(() => {
        if (this.socket) this.socket.close(4000, "heartbeat timeout");
      }, this.heartbeatMs);
    }, this.heartbeatMs);
  }

  /** @param {any} frame */
  send(frame) {
    if (!this.socket || this.socket.readyState !== 1) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** @param {any} frame */
  receive(frame) {
    switch (frame.type) {
      case "welcome":
        this.state = "open";
        this.attempt = 0;
        this.heartbeatMs = Math.max(1000, (frame.heartbeatSec || 20) * 1000);
        this.scheduleRefresh(frame.expiresAt);
        if (this.options.onWelcome) this.options.onWelcome(frame.config || {});
        return;
      case "command":
        if (Date.parse(frame.expiresAt) > Date.now() && this.options.onItem) {
          this.options.onItem(frame.name, frame.data);
        }
        this.last = frame.id;
        this.keep();
        this.send({ type: "ack", id: frame.id });
        return;
      case "ack":
      case "nack": {
        const waiting = this.pending.get(frame.id);
        if (!waiting) return;
        this.pending.delete(frame.id);
        clearTimeout(waiting.timer);
        if (frame.type === "ack") waiting.resolve(frame);
        else waiting.reject(new Error(`${frame.code}: ${frame.message}`));
        return;
      }
      default:
        return; // pong, refreshed, error (the close follows)
    }
  }

  /** @param {number|undefined} expiresAt Unix seconds */
  scheduleRefresh(expiresAt) {
    this.clear("refresh");
    if (!expiresAt) return;
    const wait = Math.max(1000, (expiresAt - 60) * 1000 - Date.now());
    this.timers.refresh = setTimeout(() => {
      this.options.token().then(
        (token) => this.send({ type: "refresh", token: String(token) }),
        () => this.scheduleRefresh(Date.now() / 1000 + 65)
      );
    }, wait);
  }

  /**
   * Send a request (``startCallRequested``, ``presenceUpdateRequested``, ...): resolves with
   * its ack once it is in the log, rejects on its nack or when the relay is not there.
   * @param {string} name @param {Record<string, unknown>} data
   * @returns {Promise<any>}
   */
  request(name, data) {
    const id = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      const frame = { type: "event", id, name, at: new Date().toISOString(), data };
      if (!this.send(frame)) {
        reject(new Error("the relay is not connected"));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("the relay did not answer in time"));
      }, REQUEST_WAIT_MS);
      this.pending.set(id, { resolve, reject, timer });
    });
  }
}
