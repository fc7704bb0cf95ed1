// @ts-check
/*
 * softphone.js: the softphone-relay wrapper library (softphone.v1).
 *
 * The softphone loads this file and calls the contract: load(callback), incomingCall,
 * callAccepted, callRejected, callEnded, callNotesSubmitted, outboundCallInitiated,
 * statusChanged. Every hook becomes an event, kept in a persistent outbox (localStorage,
 * else memory) until the relay acks it, and streamed over one websocket; commands from the
 * relay (start_call, update_presence, get_presence, disposition, partner_config) are handed to
 * the softphone's callback once each, never after they expire.
 *
 * No dependencies and no build step: a classic <script> defines window.SoftphoneWrapper (the
 * name is data-global on the script tag); `import "softphone.js"` does the same from a module
 * (softphone.mjs re-exports it); in Node, require() returns the factory and its pure parts.
 */
(/** @param {any} root */ function (root) {
  "use strict";

  var VERSION = "1.0.0";
  var SUBPROTOCOL = "softphone.v1";
  /** The contract's hooks and commands (checked against contract.schema.json by test/). */
  /** @type {import("./softphone").HookName[]} */
  var HOOKS = [
    "incomingCall",
    "callAccepted",
    "callRejected",
    "callEnded",
    "callNotesSubmitted",
    "outboundCallInitiated",
    "statusChanged",
  ];
  /** @type {import("./softphone").CommandName[]} */
  var COMMANDS = ["start_call", "update_presence", "get_presence", "disposition", "partner_config"];
  /** Nack codes that mean "this event will never be accepted": report and drop it. */
  var FINAL_NACKS = ["bad_frame", "unknown_event", "invalid_event", "forbidden"];
  /** Close codes after which reconnecting cannot help. */
  var STOP_CODES = { 4400: "bad_hello", 4403: "forbidden", 4409: "replaced" };
  /** How long to wait before asking again for a token the relay refused as a refresh. */
  var REFRESH_RETRY_MS = 5000;
  /** The Open CTI version the wrapper loads when the page has not loaded Open CTI itself. */
  var OPEN_CTI_VERSION = "62.0";
  /** How long to wait for Open CTI to appear, and how often to look. */
  var OPEN_CTI_WAIT_MS = 30000;
  var OPEN_CTI_POLL_MS = 250;
  /** How long a screen pop with no match waits for the relay's search forms (the event's ack). */
  var SCREEN_POP_WAIT_MS = 3000;
  /** The call center definition's section for the relay, as getCallCenterSettings names its
   *  items ("/section/item"). */
  var CALL_CENTER_SECTION = "/softphoneRelay/";

  /** What Open CTI itself accepts as sfdcIframeOrigin (its initialize() throws otherwise). */
  var SALESFORCE_ORIGIN = /^https?:\/\/[\w.-]+(\.force\.com|\.salesforce\.com)(:\d+)?$/;

  // -- pure parts ----------------------------------------------------------------------------

  /**
   * A hook's params as an object: an object is copied, a JSON string parsed, nothing is {}.
   * @param {string} hook
   * @param {unknown} params
   * @returns {Record<string, unknown>}
   */
  function parseParams(hook, params) {
    if (params === undefined || params === null || params === "") return {};
    if (typeof params === "string") {
      var parsed;
      try {
        parsed = JSON.parse(params);
      } catch (error) {
        throw new TypeError(hook + ": params are not valid JSON: " + error.message);
      }
      return parseParams(hook, parsed);
    }
    if (typeof params !== "object" || Array.isArray(params)) {
      throw new TypeError(hook + ": params must be an object or a JSON string, got " + typeof params);
    }
    /** @type {Record<string, unknown>} */
    var copy = {};
    for (var key in params) {
      if (Object.prototype.hasOwnProperty.call(params, key)) copy[key] = params[key];
    }
    return copy;
  }

  /**
   * Exponential backoff with jitter: base * 2^attempt capped at cap, drawn in [delay/2, delay].
   * @param {number} attempt failures so far (0 for the first retry)
   * @param {{base?: number, cap?: number}} [options]
   * @param {() => number} [random]
   */
  function backoffDelay(attempt, options, random) {
    var base = (options && options.base) || 500;
    var cap = (options && options.cap) || 30000;
    var ceiling = Math.min(cap, base * Math.pow(2, Math.min(attempt, 30)));
    return ceiling / 2 + (random || Math.random)() * (ceiling / 2);
  }

  /** Storage that keeps JSON values under keys: localStorage when it works, else memory. */
  function pickStorage(candidate) {
    try {
      if (candidate && typeof candidate.key === "function") {
        var probe = "softphone-relay:probe";
        candidate.setItem(probe, "1");
        candidate.removeItem(probe);
        return { kind: "localStorage", store: candidate };
      }
    } catch (error) {
      /* private mode, quota, or blocked: fall through to memory */
    }
    var memory = {};
    return {
      kind: "memory",
      store: {
        getItem: function (k) { return Object.prototype.hasOwnProperty.call(memory, k) ? memory[k] : null; },
        setItem: function (k, v) { memory[k] = String(v); },
        removeItem: function (k) { delete memory[k]; },
        key: function (i) { return Object.keys(memory)[i] || null; },
        get length() { return Object.keys(memory).length; },
      },
    };
  }

  /** The event id at the end of an outbox key (PREFIX:ORDER:ID). */
  function idOfKey(key) { return key.slice(key.lastIndexOf(":") + 1); }

  /** Every key of a storage (localStorage and our memory store both have key(i) and length). */
  function storageKeys(store) {
    var keys = [];
    try {
      for (var i = 0; i < store.length; i++) keys.push(store.key(i));
    } catch (error) {
      /* storage became unavailable: the in-memory events still go out */
    }
    return keys;
  }

  function readJson(store, key, fallback) {
    try {
      var raw = store.getItem(key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (error) {
      return fallback;
    }
  }

  /**
   * Events not yet acked, in the order the softphone called the hooks. One storage key per
   * event (PREFIX:ORDER:ID, ORDER the hook's time then a counter), so tabs of one agent never
   * overwrite each other's events: each tab adds its own and removes only what was acked, and
   * any tab (or the next page load) sends what any tab left. Events that storage refuses (a
   * full quota) are kept in memory, still sent, and reported once through `onFull`.
   */
  function Outbox(store, prefix, onFull) {
    this.store = store;
    this.prefix = prefix + ":";
    this.memory = {};
    this.counter = 0;
    this.onFull = onFull || function () {};
    this.full = false;
    this.migrate(prefix);
  }
  /** An outbox of an earlier version (one key holding every event) becomes one key each. */
  Outbox.prototype.migrate = function (legacyKey) {
    var legacy = readJson(this.store, legacyKey, null);
    if (!Array.isArray(legacy)) return;
    var self = this;
    legacy.forEach(function (frame) { if (frame && frame.id) self.add(frame); });
    try { this.store.removeItem(legacyKey); } catch (error) { /* memory only */ }
  };
  Outbox.prototype.order = function (frame) {
    var at = Date.parse(frame.at);
    var stamp = ("0000000000000" + (isNaN(at) ? 0 : at)).slice(-13);
    this.counter += 1;
    return stamp + "." + ("000000" + this.counter).slice(-6);
  };
  Outbox.prototype.add = function (frame) {
    var key = this.prefix + this.order(frame) + ":" + frame.id;
    try {
      this.store.setItem(key, JSON.stringify(frame));
    } catch (error) {
      this.memory[key] = frame;
      if (!this.full) {
        this.full = true;
        this.onFull(error);
      }
    }
  };
  /** The keys of the pending events, in hook order (no event is parsed to find them). */
  Outbox.prototype.keys = function () {
    var self = this;
    var found = {};
    storageKeys(this.store).forEach(function (key) {
      if (key && key.indexOf(self.prefix) === 0) found[key] = true;
    });
    Object.keys(this.memory).forEach(function (key) { found[key] = true; });
    return Object.keys(found).sort();
  };
  Outbox.prototype.frame = function (key) {
    return this.memory[key] || readJson(this.store, key, null);
  };
  Outbox.prototype.remove = function (id) {
    var self = this;
    var keys = this.keys().filter(function (key) { return idOfKey(key) === id; });
    keys.forEach(function (key) {
      delete self.memory[key];
      try { self.store.removeItem(key); } catch (error) { /* memory only */ }
    });
    return keys.length > 0;
  };
  Outbox.prototype.get = function (id) {
    var keys = this.keys();
    for (var i = 0; i < keys.length; i++) if (idOfKey(keys[i]) === id) return this.frame(keys[i]);
    return null;
  };
  Outbox.prototype.list = function () {
    var self = this;
    var seen = {};
    var frames = [];
    this.keys().forEach(function (key) {
      var frame = seen[idOfKey(key)] ? null : self.frame(key);
      if (frame) {
        seen[frame.id] = true;
        frames.push(frame);
      }
    });
    return frames;
  };
  Outbox.prototype.size = function () {
    var ids = {};
    this.keys().forEach(function (key) { ids[idOfKey(key)] = true; });
    return Object.keys(ids).length;
  };
  /** True when a storage key is one of this outbox's events (a change seen from another tab). */
  Outbox.prototype.owns = function (key) { return Boolean(key) && key.indexOf(this.prefix) === 0; };

  /** Command ids already handed to the softphone (the newest `limit`), across reloads. */
  function HandledCommands(store, key, limit) {
    this.store = store;
    this.key = key;
    this.limit = limit || 500;
    this.ids = readJson(store, key, []);
  }
  HandledCommands.prototype.has = function (id) { return this.ids.indexOf(id) !== -1; };
  HandledCommands.prototype.add = function (id) {
    if (this.has(id)) return;
    this.ids.push(id);
    if (this.ids.length > this.limit) this.ids = this.ids.slice(this.ids.length - this.limit);
    try { this.store.setItem(this.key, JSON.stringify(this.ids)); } catch (error) { /* memory only */ }
  };
  HandledCommands.prototype.last = function () {
    return this.ids.length ? this.ids[this.ids.length - 1] : null;
  };

  /**
   * The Salesforce origin that opened this page as a call center's adapter, from the
   * sfdcIframeOrigin parameter Salesforce appends to the adapter URL (checked as Open CTI
   * checks it: a force.com or salesforce.com host, on the page's own protocol); null if none.
   */
  function salesforceOriginOf(search, protocol) {
    var origin = iframeOriginOf(search);
    if (origin === null || !SALESFORCE_ORIGIN.test(origin)) return null;
    return origin.slice(0, origin.indexOf(":") + 1) === protocol ? origin : null;
  }

  /** The sfdcIframeOrigin parameter as given, unchecked; null if absent or undecodable. */
  function iframeOriginOf(search) {
    var match = /[?&]sfdcIframeOrigin=([^&#]*)/.exec(search || "");
    if (!match) return null;
    try { return decodeURIComponent(match[1].replace(/\+/g, " ")); } catch (e) { return null; }
  }

  /** True once a command may no longer be handed over (expiresAt in the past). */
  /** The digits of a phone number, to compare its forms. */
  function digitsOf(number) { return number.replace(/\D/g, ""); }

  function isExpired(command, nowMs) {
    var at = Date.parse(command.expiresAt);
    return !isNaN(at) && at <= nowMs;
  }

  function uuid4(cryptoApi, random) {
    if (cryptoApi && typeof cryptoApi.randomUUID === "function") return cryptoApi.randomUUID();
    var hex = "";
    for (var i = 0; i < 32; i++) hex += Math.floor((random || Math.random)() * 16).toString(16);
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-4" + hex.slice(13, 16) + "-" +
      ((parseInt(hex[16], 16) & 3) | 8).toString(16) + hex.slice(17, 20) + "-" + hex.slice(20, 32);
  }

  // -- the wrapper ---------------------------------------------------------------------------

  /**
   * A wrapper bound to an environment (the browser's, or fakes in tests).
   * @param {object} env WebSocket, storage, fetch, console, now, setTimeout, clearTimeout,
   *   random, crypto, resolveGlobal(name), sforce(), location() ({search, protocol}),
   *   loadScript(url) (a promise), onStorage(listener(key, newValue)) (other tabs' writes)
   * @returns {import("./softphone").SoftphoneWrapper} checked by tsc against softphone.d.ts
   */
  function createWrapper(env) {
    var options = {
      url: null, token: null, tokenUrl: null, salesforce: null, screenPop: false, onError: null,
    };
    var openCti = null; // a promise of sforce.opencti, once asked for
    var openCtiWired = false;
    if (env.onStorage) {
      // Another tab of this page's agent saved an event (a tab replaced by this one goes on
      // receiving hooks): send it on this tab's open session.
      env.onStorage(function (key, value) {
        if (value === null || !outbox || !outbox.owns(key) || state !== "open") return;
        var frame = null;
        try { frame = JSON.parse(value); } catch (error) { return; }
        if (frame && frame.type === "event") send(frame);
      });
    }
    var callback = null;
    var socket = null;
    /** @type {import("./softphone").WrapperState} */
    var state = "idle";
    var attempt = 0;
    var timers = { reconnect: null, ping: null, pongDeadline: null, resend: null, refresh: null };
    var heartbeatMs = 20000;
    var freshToken = false;
    var storage = pickStorage(env.storage);
    var outbox = null;
    var handled = null;
    var listeners = [];
    /** Incoming calls' screen pops still searching, by event id. */
    var pops = {};

    function stores() {
      var prefix = "softphone-relay:" + (options.url || "unconfigured") + ":";
      if (!outbox || outbox.prefix !== prefix + "outbox:") {
        var pending = outbox ? outbox.list() : [];
        outbox = new Outbox(storage.store, prefix + "outbox", function (error) {
          report("storage_failed", "the outbox could not be saved (" + error.message + "): " +
            "events are kept in memory and still sent, but a page reload would lose them");
        });
        pending.forEach(function (f) { if (!outbox.get(f.id)) outbox.add(f); });
        handled = new HandledCommands(storage.store, prefix + "handled", 500);
      }
    }

    function report(code, message, detail) {
      var error = { code: code, message: message, detail: detail };
      (env.console || console).error("softphone-relay: " + code + ": " + message);
      if (typeof options.onError === "function") {
        try { options.onError(error); } catch (ignored) { /* the host's handler failed */ }
      }
    }

    function notify(kind, detail) {
      listeners.forEach(function (l) { try { l(kind, detail); } catch (ignored) { /* host */ } });
    }

    function handOver(name, payload) {
      if (typeof callback !== "function") return false;
      try {
        callback(name, payload);
      } catch (error) {
        report("callback_failed", name + ": the softphone's callback threw: " + error.message);
      }
      return true;
    }

    function send(frame) {
      if (socket && state === "open") {
        socket.send(JSON.stringify(frame));
        return true;
      }
      return false;
    }

    function flush() {
      outbox.list().forEach(send);
      notify("outbox", outbox.size());
    }

    function emit(name, params) {
      stores();
      var frame = {
        type: "event",
        id: uuid4(env.crypto, env.random),
        name: name,
        at: new Date(env.now()).toISOString(),
        data: parseParams(name, params),
      };
      outbox.add(frame);
      send(frame);
      notify("outbox", outbox.size());
      return frame.id;
    }

    function clearTimer(name) {
      if (timers[name] !== null) env.clearTimeout(timers[name]);
      timers[name] = null;
    }

    function scheduleReconnect() {
      if (state === "stopped") return;
      state = "waiting";
      var delay = backoffDelay(attempt, { base: 500, cap: 30000 }, env.random);
      attempt += 1;
      notify("reconnecting", delay);
      clearTimer("reconnect");
      timers.reconnect = env.setTimeout(connect, delay);
    }

    // -- Open CTI: found on the page, or loaded from the Salesforce origin that opened it --

    function salesforceOrigin() {
      var where = env.location ? env.location() : null;
      return where ? salesforceOriginOf(where.search, where.protocol) : null;
    }

    function whenOpenCti() {
      if (openCti) return openCti;
      openCti = new Promise(function (resolve, reject) {
        var origin = salesforceOrigin();
        if (!env.sforce() && origin && env.loadScript) {
          env.loadScript(origin + "/support/api/" + OPEN_CTI_VERSION + "/lightning/opencti_min.js")
            .catch(function () { /* the wait below says what went wrong */ });
        }
        var waited = 0;
        (function look() {
          var api = env.sforce();
          if (api) { resolve(api); return; }
          if (waited >= OPEN_CTI_WAIT_MS) {
            var where = env.location();
            var given = where ? iframeOriginOf(where.search) : null;
            reject(new Error(origin
              ? "Open CTI did not load from " + origin + " within " + OPEN_CTI_WAIT_MS / 1000 + " s"
              : given !== null
                ? "Open CTI is not on the page, and its sfdcIframeOrigin " + given + " is not a " +
                  "Salesforce origin on this page's protocol (Open CTI accepts only force.com " +
                  "and salesforce.com hosts): Open CTI was not loaded from it"
                : "Open CTI is not on the page, and the page was not opened by a Salesforce call " +
                  "center (no sfdcIframeOrigin in its URL)"));
            return;
          }
          waited += OPEN_CTI_POLL_MS;
          env.setTimeout(look, OPEN_CTI_POLL_MS);
        })();
      });
      return openCti;
    }

    /** Click-to-dial, once per page whatever the order of loading (Open CTI's listeners add up). */
    function wireOpenCti() {
      var expected = Boolean(salesforceOrigin() || (options.salesforce && options.salesforce.apexClass));
      whenOpenCti().then(function (api) {
        if (openCtiWired) return;
        openCtiWired = true;
        enableClickToDial(api);
      }, function (error) {
        if (expected) report("open_cti_unavailable", error.message);
      });
    }

    /** Opened by a Salesforce call center with no URL configured: the relay's URL, and the
     *  Apex class that mints tokens unless a token source is configured, from the call center
     *  definition's softphoneRelay section (Open CTI getCallCenterSettings); then connect. */
    function fromCallCenter() {
      whenOpenCti().then(function (opencti) {
        opencti.getCallCenterSettings({
          callback: function (response) {
            var values = response && response.success ? response.returnValue || {} : null;
            if (!values) {
              report("call_center_settings_failed", "getCallCenterSettings failed: " +
                JSON.stringify(response && response.errors));
              return;
            }
            var url = values[CALL_CENTER_SECTION + "relayUrl"];
            if (!url) {
              report("call_center_settings_failed", "the call center definition has no " +
                CALL_CENTER_SECTION + "relayUrl item: add it, or configure url");
              return;
            }
            if (!options.url) options.url = String(url);
            var apexClass = values[CALL_CENTER_SECTION + "tokenApexClass"];
            var configured = options.token || options.tokenUrl ||
              (options.salesforce && options.salesforce.apexClass);
            if (apexClass && !configured) {
              options.salesforce = {
                apexClass: String(apexClass),
                methodName: String(values[CALL_CENTER_SECTION + "tokenApexMethod"] || "mint"),
              };
            }
            stores();
            if (state === "idle") connect();
          },
        });
      }, function () { /* wireOpenCti reports open_cti_unavailable */ });
    }

    function apexToken() {
      var apex = options.salesforce;
      return whenOpenCti().then(function (api) {
        return new Promise(function (resolve, reject) {
          api.runApex({
            apexClass: apex.apexClass,
            methodName: apex.methodName || "mint",
            methodParams: apex.methodParams || "none",
            callback: function (response) {
              var value = response && response.success && response.returnValue
                ? response.returnValue.runApex : null;
              if (value) { resolve(String(value)); return; }
              reject(new Error("runApex " + apex.apexClass + "." + (apex.methodName || "mint") +
                " failed: " + JSON.stringify(response && response.errors)));
            },
          });
        });
      });
    }

    function getToken(fresh) {
      if (options.salesforce && options.salesforce.apexClass) return apexToken();
      if (options.tokenUrl && (fresh || freshToken || options.token === null)) {
        return env.fetch(options.tokenUrl, { credentials: "include", cache: "no-store" }).then(
          function (response) {
            if (!response.ok) throw new Error("token endpoint answered " + response.status);
            return response.text();
          }
        ).then(function (text) {
          var trimmed = text.trim();
          if (trimmed.charAt(0) === "{") return JSON.parse(trimmed).token;
          return trimmed;
        });
      }
      var token = options.token;
      return Promise.resolve(
        typeof token === "function" ? token({ fresh: fresh || freshToken }) : token
      );
    }

    // The relay closes a session when its token expires (4401): before then, fetch a fresh
    // token and hand it over on the open socket (a refresh frame), with no gap in delivery.
    function refreshable() {
      // A fixed token string cannot be replaced by a fresher one: nothing to refresh with.
      return Boolean((options.salesforce && options.salesforce.apexClass) || options.tokenUrl ||
        typeof options.token === "function");
    }

    function scheduleRefresh(expiresAt) {
      clearTimer("refresh");
      if (typeof expiresAt !== "number" || !refreshable()) return;
      var remaining = expiresAt * 1000 - env.now();
      timers.refresh = env.setTimeout(refresh, Math.max(1000, remaining * 0.8));
    }

    function refresh() {
      timers.refresh = null;
      var ws = socket;
      getToken(true).then(function (token) {
        if (!token) throw new Error("no token (configure token or tokenUrl)");
        if (socket !== ws || !send({ type: "refresh", token: String(token) })) return;
      }).catch(function (error) {
        report("token_failed", "refresh: " + error.message);
        if (socket === ws) timers.refresh = env.setTimeout(refresh, REFRESH_RETRY_MS);
      });
    }

    /** Whether the page is served over https: and the relay's URL is ws:// to a host other
     *  than this machine (mixed content, which the browser refuses with a SecurityError that
     *  says little; loopback addresses are exempt, in browsers as here). */
    function insecureUrl() {
      var where = env.location();
      var host = /^ws:\/\/(\[[^\]]*\]|[^\/:?#]*)/i.exec(String(options.url));
      if (!where || where.protocol !== "https:" || !host) return false;
      var name = host[1].toLowerCase();
      return !(name === "localhost" || /\.localhost$/.test(name) || name === "[::1]" ||
        /^127\.\d+\.\d+\.\d+$/.test(name));
    }

    function connect() {
      if (state === "stopped" || !options.url) return;
      if (insecureUrl()) {
        state = "idle"; // nothing to retry: configure a wss:// URL and load again
        report(
          "insecure_url",
          "this page is served over https: and may not open " + options.url +
            ": use the relay's wss:// URL (the relay or its proxy terminating TLS)"
        );
        return;
      }
      state = "connecting";
      getToken().then(function (token) {
        if (state === "stopped") return;
        if (!token) throw new Error("no token (configure token or tokenUrl)");
        freshToken = false;
        open(String(token));
      }).catch(function (error) {
        report("token_failed", error.message);
        scheduleReconnect();
      });
    }

    function open(token) {
      var ws;
      try {
        ws = new env.WebSocket(options.url, SUBPROTOCOL);
      } catch (error) {
        report("socket_failed", error.message);
        scheduleReconnect();
        return;
      }
      socket = ws;
      ws.onopen = function () {
        ws.send(JSON.stringify({
          type: "hello",
          token: token,
          lastCommandId: handled.last(),
          client: "softphone.js/" + VERSION,
        }));
      };
      ws.onmessage = function (message) {
        if (ws !== socket) return;
        beat();
        var frame;
        try {
          frame = JSON.parse(message.data);
        } catch (error) {
          report("bad_frame_from_relay", "not JSON: " + String(message.data).slice(0, 80));
          return;
        }
        receive(frame);
      };
      ws.onclose = function (event) {
        if (ws !== socket) return;
        socket = null;
        clearTimer("refresh");
        clearTimer("ping");
        clearTimer("pongDeadline");
        closed(event.code, event.reason);
      };
      ws.onerror = function () { /* onclose follows and decides */ };
    }

    function closed(code, reason) {
      notify("closed", code);
      if (state === "stopped") return;
      if (STOP_CODES[code]) {
        state = "stopped";
        var text = code === 4409
          ? "another tab or window of this agent took over the connection; this one stops"
          : "the relay refused this session for good (" + (reason || code) + ")";
        report(STOP_CODES[code], text);
        return;
      }
      if (code === 4401) freshToken = true;
      scheduleReconnect();
    }

    function beat() {
      clearTimer("pongDeadline");
      clearTimer("ping");
      timers.ping = env.setTimeout(function () {
        if (!send({ type: "ping" })) return;
        timers.pongDeadline = env.setTimeout(function () {
          // No word from the relay for too long: the connection is dead even if not closed.
          report("heartbeat_timeout", "no answer from the relay; reconnecting");
          var dead = socket;
          socket = null;
          if (dead) { try { dead.close(4000, "heartbeat timeout"); } catch (ignored) { /* gone */ } }
          closed(1006, "heartbeat timeout");
        }, heartbeatMs);
      }, heartbeatMs);
    }

    function receive(frame) {
      switch (frame.type) {
        case "welcome":
          state = "open";
          attempt = 0;
          heartbeatMs = Math.max(1000, (frame.heartbeatSec || 20) * 1000);
          beat();
          scheduleRefresh(frame.expiresAt);
          notify("open", frame);
          if (frame.recovered === false) {
            report("commands_may_be_lost", "the relay could not resume every command");
          }
          if (frame.config) {
            if (frame.config.disposition) handOver("disposition", frame.config.disposition);
            if (frame.config.partner_config) handOver("partner_config", frame.config.partner_config);
          }
          flush();
          return;
        case "ack":
          if (pops[frame.id]) searchForms(frame.id, frame.searchTerms || []);
          outbox.remove(frame.id);
          notify("outbox", outbox.size());
          return;
        case "nack":
          nacked(frame);
          return;
        case "command":
          command(frame);
          return;
        case "error":
          notify("error", frame);
          return;
        case "pong":
          return;
        case "refreshed":
          notify("refreshed", frame.expiresAt);
          scheduleRefresh(frame.expiresAt);
          return;
        default:
          report("unknown_frame", "the relay sent a " + frame.type + " frame");
      }
    }

    function nacked(frame) {
      if (frame.code === "refresh_refused") {
        // The current token still holds until it expires: try again with another one.
        report(frame.code, frame.message);
        clearTimer("refresh");
        timers.refresh = env.setTimeout(refresh, REFRESH_RETRY_MS);
        return;
      }
      var event = frame.id ? outbox.get(frame.id) : null;
      if (FINAL_NACKS.indexOf(frame.code) !== -1) {
        if (event) outbox.remove(frame.id);
        if (frame.id && pops[frame.id]) searchForms(frame.id, []);
        report(frame.code, frame.message, event);
        notify("outbox", outbox.size());
        return;
      }
      // unavailable, rate_limited: the event stays and is resent after a pause.
      if (timers.resend === null) {
        timers.resend = env.setTimeout(function () {
          timers.resend = null;
          flush();
        }, backoffDelay(1, { base: 500, cap: 5000 }, env.random));
      }
    }

    function command(frame) {
      if (isExpired(frame, env.now())) {
        notify("expired", frame);
        return; // never handed over, and not acked: it was not handled
      }
      if (!handled.has(frame.id)) {
        if (COMMANDS.indexOf(frame.name) === -1) {
          report("unknown_command", "the relay sent command " + frame.name);
        } else if (!handOver(frame.name, frame.data === undefined ? null : frame.data)) {
          return; // no callback yet: not handled, the relay redelivers on the next session
        }
        handled.add(frame.id);
        notify("command", frame);
      }
      send({ type: "ack", id: frame.id });
    }

    /**
     * The screen pop of an incoming call. The number as the softphone gave it is searched at
     * once (deferred, so nothing pops yet); when nothing matches, the forms the relay sends back
     * in the event's ack (E.164 and national digits, the forms the caller match searches) are
     * searched in turn, and the first one that finds a record is popped. When none does, or no
     * ack comes within SCREEN_POP_WAIT_MS, the softphone layout's no-match pop is shown.
     */
    function screenPop(id, data) {
      if (!options.screenPop || !env.sforce() || !data.callerANI) return;
      var pop = { tried: [], terms: null, busy: false, noMatch: null, timer: null };
      pops[id] = pop;
      pop.timer = env.setTimeout(function () {
        searchForms(id, []);
      }, SCREEN_POP_WAIT_MS);
      search(id, String(data.callerANI));
    }

    function search(id, term) {
      var pop = pops[id];
      var opencti = env.sforce();
      pop.tried.push(digitsOf(term));
      pop.busy = true;
      opencti.searchAndScreenPop({
        searchParams: term,
        callType: opencti.CALL_TYPE ? opencti.CALL_TYPE.INBOUND : "inbound",
        deferred: true,
        callback: function (result) {
          pop.busy = false;
          if (!result || result.success === false) {
            report("screen_pop_failed", JSON.stringify(result && result.errors));
            return finishPop(id, null);
          }
          // The answer holds the records found, keyed by id, beside SCREEN_POP_DATA (the
          // argument for screenPop()) when deferred (Open CTI: searchAndScreenPop for Lightning).
          var found = result.returnValue || {};
          if (!pop.noMatch) pop.noMatch = found.SCREEN_POP_DATA || null;
          var matched = Object.keys(found).some(function (key) {
            return key !== "SCREEN_POP_DATA";
          });
          if (matched) return finishPop(id, found.SCREEN_POP_DATA || null);
          nextSearch(id);
        },
      });
    }

    /** The relay's search forms for the pending pop ``id`` (none: nothing more to try). */
    function searchForms(id, terms) {
      var pop = pops[id];
      if (!pop || pop.terms) return;
      pop.terms = terms;
      if (!pop.busy) nextSearch(id);
    }

    function nextSearch(id) {
      var pop = pops[id];
      if (!pop.terms) return; // the ack's forms are still to come
      var untried = pop.terms.filter(function (term) {
        return pop.tried.indexOf(digitsOf(term)) === -1;
      });
      if (untried.length) return search(id, untried[0]);
      finishPop(id, pop.noMatch);
    }

    function finishPop(id, target) {
      var pop = pops[id];
      if (!pop) return;
      delete pops[id];
      env.clearTimeout(pop.timer);
      if (!target) return;
      env.sforce().screenPop({
        type: target.type,
        params: target.params,
        callback: function (result) {
          if (result && result.success === false) report("screen_pop_failed", JSON.stringify(result.errors));
        },
      });
    }

    function enableClickToDial(opencti) {
      opencti.onClickToDial({
        listener: function (payload) {
          var data = { dialTo: String(payload.number) };
          if (payload.recordId) data.recordId = String(payload.recordId);
          emit("startCallRequested", data);
        },
      });
      opencti.enableClickToDial({
        callback: function (result) {
          if (result && result.success === false) report("click_to_dial_failed", JSON.stringify(result.errors));
        },
      });
    }

    /** One contract hook: the event it makes, and the screen pop of an incoming call. */
    function hook(name) {
      return function (params) {
        var id = emit(name, params);
        if (name === "incomingCall") screenPop(id, parseParams(name, params));
        return id;
      };
    }

    /** @type {import("./softphone").SoftphoneWrapper} */
    var api = {
      version: VERSION,
      /** Where to connect and how to get a token; may be called again to change them. */
      configure: function (given) {
        given = given || {};
        ["url", "token", "tokenUrl", "salesforce", "screenPop", "onError"].forEach(function (key) {
          if (given[key] !== undefined) options[key] = given[key];
        });
        stores();
        return api;
      },
      /** load(callback): callback is a function or the name of a global function. */
      load: function (cb) {
        var resolved = typeof cb === "string" ? env.resolveGlobal(cb) : cb;
        if (typeof resolved !== "function") {
          throw new TypeError("load: callback must be a function or the name of a global function, got " + String(cb));
        }
        callback = resolved;
        stores();
        wireOpenCti();
        if (state === "idle" || state === "stopped") {
          state = "idle";
          if (!options.url && salesforceOrigin()) fromCallCenter(); else connect();
        }
        return api;
      },
      /** Listen to what the wrapper does: open, closed, command, expired, outbox, reconnecting. */
      on: function (listener) { listeners.push(listener); return api; },
      /** How many events wait for an ack. */
      outboxSize: function () { stores(); return outbox.size(); },
      /** Where the connection stands. */
      state: function () { return state; },
      /** Close the connection and stop reconnecting. */
      stop: function () {
        state = "stopped";
        ["reconnect", "ping", "pongDeadline", "resend", "refresh"].forEach(clearTimer);
        if (socket) { var s = socket; socket = null; s.close(1000, "stopped"); }
      },
      incomingCall: hook("incomingCall"),
      callAccepted: hook("callAccepted"),
      callRejected: hook("callRejected"),
      callEnded: hook("callEnded"),
      callNotesSubmitted: hook("callNotesSubmitted"),
      outboundCallInitiated: hook("outboundCallInitiated"),
      statusChanged: hook("statusChanged"),
    };
    return api;
  }

  function browserEnv(scope) {
    return {
      WebSocket: scope.WebSocket,
      storage: (function () { try { return scope.localStorage; } catch (e) { return null; } })(),
      fetch: scope.fetch ? scope.fetch.bind(scope) : null,
      console: scope.console,
      now: function () { return Date.now(); },
      setTimeout: scope.setTimeout.bind(scope),
      clearTimeout: scope.clearTimeout.bind(scope),
      random: Math.random,
      crypto: scope.crypto,
      resolveGlobal: function (name) { return scope[name]; },
      sforce: function () { return scope.sforce && scope.sforce.opencti ? scope.sforce.opencti : null; },
      location: function () { return scope.location || null; },
      onStorage: function (listener) {
        if (!scope.addEventListener) return;
        scope.addEventListener("storage", function (event) { listener(event.key, event.newValue); });
      },
      loadScript: function (url) {
        return new Promise(function (resolve, reject) {
          var element = scope.document.createElement("script");
          element.src = url;
          element.onload = resolve;
          element.onerror = function () { reject(new Error("could not load " + url)); };
          scope.document.head.appendChild(element);
        });
      },
    };
  }

  /** @type {import("./softphone").WrapperParts} */
  var parts = {
    VERSION: VERSION,
    HOOKS: HOOKS,
    COMMANDS: COMMANDS,
    createWrapper: createWrapper,
    parseParams: parseParams,
    backoffDelay: backoffDelay,
    isExpired: isExpired,
    salesforceOriginOf: salesforceOriginOf,
    pickStorage: pickStorage,
    Outbox: Outbox,
    HandledCommands: HandledCommands,
    uuid4: uuid4,
  };

  if (typeof module !== "undefined" && module.exports) {
    module.exports = parts;
    return;
  }
  var script = root.document && root.document.currentScript;
  var data = (script && script.dataset) || {};
  var name = data.global || "SoftphoneWrapper";
  /** @type {import("./softphone").SoftphoneGlobal} */
  var wrapper = Object.assign(createWrapper(browserEnv(root)), { parts: parts });
  root[name] = wrapper;
  if (data.url || data.tokenUrl || data.token || data.salesforceApexClass) {
    wrapper.configure({
      url: data.url,
      tokenUrl: data.tokenUrl,
      token: data.token,
      salesforce: data.salesforceApexClass
        ? { apexClass: data.salesforceApexClass, methodName: data.salesforceApexMethod || "mint" }
        : undefined,
      screenPop: data.screenPop === "true",
    });
  }
})(typeof globalThis !== "undefined" ? globalThis : this);
