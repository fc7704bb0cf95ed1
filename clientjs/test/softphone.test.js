// Unit tests of softphone.js with Node's own test runner: the pure parts, and the wrapper
// driven through a fake WebSocket, fake timers and an in-memory storage (no network).
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const parts = require("../softphone.js");

const {
  createWrapper, parseParams, backoffDelay, isExpired, salesforceOriginOf, Outbox, HandledCommands,
} = parts;

/** An in-memory Storage with localStorage's interface (key(i) and length included). */
function memoryStorage(initial) {
  const data = Object.assign({}, initial);
  return {
    data,
    getItem: (k) => (k in data ? data[k] : null),
    setItem: (k, v) => { data[k] = String(v); },
    removeItem: (k) => { delete data[k]; },
    key: (i) => Object.keys(data)[i] ?? null,
    get length() { return Object.keys(data).length; },
  };
}

/** A fake world: sockets the test opens and closes, a clock the test moves. */
function world(options = {}) {
  const sockets = [];
  const timers = [];
  let now = Date.parse("2026-11-25T10:00:00Z");
  let ids = 0;
  class FakeSocket {
    constructor(url, protocol) {
      this.url = url;
      this.protocol = protocol;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code, reason) { this.closedWith = [code, reason]; }
    // test side
    open() { this.onopen(); }
    deliver(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
    drop(code, reason = "") { this.onclose({ code, reason }); }
  }
  const errors = [];
  const storage = options.storage || memoryStorage();
  const env = {
    WebSocket: FakeSocket,
    storage,
    fetch: options.fetch || (async () => { throw new Error("no fetch in this test"); }),
    console: { error: () => {}, warn: () => {} },
    now: () => now,
    setTimeout: (fn, ms) => { timers.push({ fn, at: now + ms }); return timers.length - 1; },
    clearTimeout: (id) => { if (timers[id]) timers[id].fn = null; },
    random: () => 0.5,
    crypto: { randomUUID: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}` },
    resolveGlobal: (name) => (options.globals || {})[name],
    sforce: () => options.sforce || null,
    location: () => options.location || null,
    loadScript: options.loadScript,
    onStorage: options.onStorage,
  };
  const wrapper = createWrapper(env);
  wrapper.configure({ url: "wss://relay/v1/socket", token: "tok", onError: (e) => errors.push(e) });
  return {
    wrapper,
    sockets,
    errors,
    storage,
    env,
    last: () => sockets[sockets.length - 1],
    advance: async (ms) => {
      now += ms;
      for (const timer of timers) {
        if (timer.fn && timer.at <= now) { const fn = timer.fn; timer.fn = null; fn(); }
      }
      await new Promise((r) => setImmediate(r));
    },
    tick: () => new Promise((r) => setImmediate(r)),
  };
}

const WELCOME = {
  type: "welcome",
  sessionId: "s1",
  agentId: "a",
  partnerId: "p",
  heartbeatSec: 20,
  config: { disposition: ["code1"], partner_config: { partnerId: "p" } },
  recovered: true,
};

async function connected(w, callback = () => {}) {
  w.wrapper.load(callback);
  await w.tick();
  w.last().open();
  w.last().deliver(WELCOME);
  return w.last();
}

test("params may be an object, a JSON string, or nothing", () => {
  assert.deepEqual(parseParams("callAccepted", { a: 1 }), { a: 1 });
  assert.deepEqual(parseParams("callAccepted", '{"a":1}'), { a: 1 });
  assert.deepEqual(parseParams("incomingCall", undefined), {});
  assert.throws(() => parseParams("callEnded", "{nope"), /callEnded: params are not valid JSON/);
  assert.throws(() => parseParams("callEnded", 42), /must be an object or a JSON string/);
});

test("backoff doubles up to its cap, with jitter in the upper half", () => {
  assert.equal(backoffDelay(0, { base: 500, cap: 30000 }, () => 0), 250);
  assert.equal(backoffDelay(3, { base: 500, cap: 30000 }, () => 1), 4000);
  assert.equal(backoffDelay(20, { base: 500, cap: 30000 }, () => 1), 30000);
});

test("a command is expired once its expiresAt has passed", () => {
  const now = Date.parse("2026-11-25T10:00:00Z");
  assert.equal(isExpired({ expiresAt: "2026-11-25T09:59:59Z" }, now), true);
  assert.equal(isExpired({ expiresAt: "2026-11-25T10:00:30Z" }, now), false);
});

test("the outbox and the handled ids survive a reload through storage", () => {
  const storage = memoryStorage();
  const outbox = new Outbox(storage, "k");
  outbox.add({ id: "e1" });
  outbox.add({ id: "e2" });
  outbox.remove("e1");
  assert.deepEqual(new Outbox(storage, "k").list(), [{ id: "e2" }]);
  const handled = new HandledCommands(storage, "h", 2);
  ["c1", "c2", "c3"].forEach((id) => handled.add(id));
  const again = new HandledCommands(storage, "h", 2);
  assert.equal(again.has("c1"), false);
  assert.equal(again.has("c3"), true);
  assert.equal(again.last(), "c3");
});

test("load accepts the name of a global function", async () => {
  const got = [];
  const w = world({ globals: { mySoftphone: (name, payload) => got.push([name, payload]) } });
  w.wrapper.load("mySoftphone");
  await w.tick();
  w.last().open();
  w.last().deliver(WELCOME);
  assert.deepEqual(got, [["disposition", ["code1"]], ["partner_config", { partnerId: "p" }]]);
  assert.throws(() => w.wrapper.load("missing"), /load: callback must be a function/);
});

test("hello carries the token and the last handled command", async () => {
  const w = world();
  const socket = await connected(w);
  assert.equal(socket.protocol, "softphone.v1");
  assert.equal(socket.sent[0].type, "hello");
  assert.equal(socket.sent[0].token, "tok");
  assert.equal(socket.sent[0].lastCommandId, null);
});

test("every hook becomes an event with a fresh id, kept until acked", async () => {
  const w = world();
  const socket = await connected(w);
  const id = w.wrapper.callAccepted('{"partnerId":"p","conversationId":"c1"}');
  w.wrapper.incomingCall();
  const events = socket.sent.filter((f) => f.type === "event");
  assert.deepEqual(events.map((e) => e.name), ["callAccepted", "incomingCall"]);
  assert.equal(events[0].id, id);
  assert.deepEqual(events[1].data, {});
  assert.equal(w.wrapper.outboxSize(), 2);
  socket.deliver({ type: "ack", id, seq: "1-0", duplicate: false });
  assert.equal(w.wrapper.outboxSize(), 1);
});

test("events made offline are sent in order, with the same ids, once connected", async () => {
  const w = world();
  w.wrapper.callEnded({ partnerId: "p", conversationId: "c1" });
  w.wrapper.statusChanged({ softphoneId: "busy" });
  const socket = await connected(w);
  const events = socket.sent.filter((f) => f.type === "event");
  assert.deepEqual(events.map((e) => e.name), ["callEnded", "statusChanged"]);
  socket.drop(1006);
  await w.advance(300);
  await w.tick();
  w.last().open();
  w.last().deliver(WELCOME);
  const resent = w.last().sent.filter((f) => f.type === "event");
  assert.deepEqual(resent.map((e) => e.id), events.map((e) => e.id));
});

test("a nack for bad input is reported and dropped; unavailable is retried", async () => {
  const w = world();
  const socket = await connected(w);
  const bad = w.wrapper.callEnded({ partnerId: "p" });
  const later = w.wrapper.statusChanged({ softphoneId: "busy" });
  socket.deliver({ type: "nack", id: bad, code: "invalid_event", message: "conversationId missing" });
  assert.equal(w.errors[0].code, "invalid_event");
  socket.deliver({ type: "nack", id: later, code: "unavailable", message: "retry later" });
  assert.equal(w.wrapper.outboxSize(), 1);
  const before = socket.sent.length;
  await w.advance(5000);
  assert.equal(socket.sent.slice(before).filter((f) => f.id === later).length, 1);
});

test("a command is handed over once, acked, and remembered across reloads", async () => {
  const got = [];
  const storage = memoryStorage();
  const w = world({ storage });
  const socket = await connected(w, (name, data) => got.push([name, data]));
  const frame = {
    type: "command",
    id: "1-0",
    name: "start_call",
    data: { dialTo: "+18883973342" },
    expiresAt: "2026-11-25T10:00:30Z",
  };
  socket.deliver(frame);
  socket.deliver(frame);
  assert.deepEqual(got.filter(([n]) => n === "start_call"), [["start_call", { dialTo: "+18883973342" }]]);
  assert.equal(socket.sent.filter((f) => f.type === "ack").length, 2);
  const reloaded = world({ storage });
  const again = [];
  const second = await connected(reloaded, (name) => again.push(name));
  assert.equal(second.sent[0].lastCommandId, "1-0");
  second.deliver(frame);
  assert.deepEqual(again, ["disposition", "partner_config"]);
});

test("an expired command never reaches the softphone", async () => {
  const got = [];
  const w = world();
  const socket = await connected(w, (name) => got.push(name));
  socket.deliver({ type: "command", id: "2-0", name: "start_call", data: {}, expiresAt: "2026-11-25T09:59:00Z" });
  assert.deepEqual(got, ["disposition", "partner_config"]);
  assert.equal(socket.sent.filter((f) => f.type === "ack").length, 0);
});

test("get_presence is handed over with a null payload", async () => {
  const got = [];
  const w = world();
  const socket = await connected(w, (name, data) => got.push([name, data]));
  socket.deliver({ type: "command", id: "3-0", name: "get_presence", data: null, expiresAt: "2026-11-25T10:01:00Z" });
  assert.deepEqual(got[2], ["get_presence", null]);
});

test("4409 stops reconnecting and says why", async () => {
  const w = world();
  const socket = await connected(w);
  socket.drop(4409, "replaced");
  await w.advance(60000);
  assert.equal(w.sockets.length, 1);
  assert.equal(w.wrapper.state(), "stopped");
  assert.equal(w.errors[0].code, "replaced");
});

test("a refused token (4401) is fetched anew before reconnecting", async () => {
  let fetched = 0;
  const w = world({
    fetch: async () => { fetched += 1; return { ok: true, text: async () => `{"token": "t${fetched}"}` }; },
  });
  w.wrapper.configure({ token: null, tokenUrl: "https://crm/token" });
  const socket = await connected(w);
  assert.equal(socket.sent[0].token, "t1");
  socket.drop(4401, "expired token");
  await w.advance(1000);
  await w.tick();
  w.last().open();
  assert.equal(w.last().sent[0].token, "t2");
});

test("silence past the heartbeat is a dead connection: reconnect", async () => {
  const w = world();
  const socket = await connected(w);
  await w.advance(20000); // the ping is sent
  assert.equal(socket.sent[socket.sent.length - 1].type, "ping");
  await w.advance(20000); // no pong
  assert.equal(w.errors[0].code, "heartbeat_timeout");
  assert.deepEqual(socket.closedWith, [4000, "heartbeat timeout"]);
  await w.advance(1000);
  await w.tick();
  assert.equal(w.sockets.length, 2);
});

test("Open CTI click-to-dial becomes a startCallRequested event", async () => {
  const calls = [];
  let listener = null;
  const sforce = {
    enableClickToDial: (o) => { calls.push("enable"); o.callback({ success: true }); },
    onClickToDial: (o) => { listener = o.listener; },
  };
  const w = world({ sforce });
  const socket = await connected(w);
  listener({ number: "(888) 397-3342", recordId: "003000000000001", objectType: "Contact" });
  const event = socket.sent.filter((f) => f.type === "event")[0];
  assert.equal(event.name, "startCallRequested");
  assert.deepEqual(event.data, { dialTo: "(888) 397-3342", recordId: "003000000000001" });
  assert.deepEqual(calls, ["enable"]);
});

/** An org whose softphone layout search finds ``records`` (digits -> record id). */
function searchingOrg(records) {
  const org = {
    searches: [],
    pops: [],
    CALL_TYPE: { INBOUND: "inbound" },
    enableClickToDial: () => {},
    onClickToDial: () => {},
    searchAndScreenPop: (o) => {
      org.searches.push([o.searchParams, o.callType, o.deferred]);
      const id = records[o.searchParams.replace(/\D/g, "")];
      const pop = id
        ? { type: "sobject", params: { recordId: id } }
        : { type: "search", params: { searchString: o.searchParams } };
      const found = id ? { [id]: { Id: id, Name: "Ana Diaz", RecordType: "Contact" } } : {};
      o.callback({ success: true, returnValue: { ...found, SCREEN_POP_DATA: pop }, errors: null });
    },
    screenPop: (o) => org.pops.push([o.type, o.params]),
  };
  return org;
}

async function incomingCall(records) {
  const org = searchingOrg(records);
  const w = world({ sforce: org });
  w.wrapper.configure({ screenPop: true });
  const socket = await connected(w);
  w.wrapper.incomingCall({ callerANI: "+442079460958" });
  const event = socket.sent.filter((f) => f.type === "event").at(-1);
  return { org, w, socket, event };
}

const FORMS = ["442079460958", "2079460958", "02079460958"];

test("screen pop: a record found by the number as given pops at once", async () => {
  const { org } = await incomingCall({ "442079460958": "003Hs00000ABCDeIAX" });
  assert.deepEqual(org.searches, [["+442079460958", "inbound", true]]);
  assert.deepEqual(org.pops, [["sobject", { recordId: "003Hs00000ABCDeIAX" }]]);
});

test("screen pop: a record stored in a national form is found by the relay's search forms", async () => {
  const { org, socket, event } = await incomingCall({ "02079460958": "003Hs00000ABCDeIAX" });
  assert.deepEqual(org.pops, [], "waits for the ack's forms");
  socket.deliver({ type: "ack", id: event.id, seq: "1-0", duplicate: false, searchTerms: FORMS });
  assert.deepEqual(org.searches.map((s) => s[0]), ["+442079460958", "2079460958", "02079460958"]);
  assert.deepEqual(org.pops, [["sobject", { recordId: "003Hs00000ABCDeIAX" }]]);
});

test("screen pop: with no match in any form the layout's no-match pop is shown once", async () => {
  const { org, socket, event, w } = await incomingCall({});
  socket.deliver({ type: "ack", id: event.id, seq: "1-0", duplicate: false, searchTerms: FORMS });
  await w.advance(10000);
  assert.equal(org.searches.length, 3);
  assert.deepEqual(org.pops, [["search", { searchString: "+442079460958" }]]);
});

test("screen pop: without an ack the no-match pop comes after a wait", async () => {
  const { org, w } = await incomingCall({});
  await w.advance(2999);
  assert.deepEqual(org.pops, []);
  await w.advance(1);
  assert.deepEqual(org.pops, [["search", { searchString: "+442079460958" }]]);
});

test("screen pop: a refused incomingCall searches no further", async () => {
  const { org, socket, event } = await incomingCall({});
  socket.deliver({ type: "nack", id: event.id, code: "invalid_event", message: "bad" });
  assert.equal(org.searches.length, 1);
  assert.deepEqual(org.pops, [["search", { searchString: "+442079460958" }]]);
});

test("before the token expires a fresh one goes over the open socket as a refresh", async () => {
  const asked = [];
  const w = world();
  w.wrapper.configure({ token: ({ fresh }) => { asked.push(fresh); return `tok-${asked.length}`; } });
  w.wrapper.load(() => {});
  await w.tick();
  const socket = w.last();
  socket.open();
  const expiresAt = Math.floor(w.env.now() / 1000) + 600;
  socket.deliver({ ...WELCOME, expiresAt });
  await w.advance(480_000); // 80% of the ten minutes left
  await w.tick();
  const refresh = socket.sent.find((f) => f.type === "refresh");
  assert.deepEqual(refresh, { type: "refresh", token: "tok-2" });
  assert.deepEqual(asked, [false, true]);
  socket.deliver({ type: "refreshed", expiresAt: expiresAt + 600 });
  await w.advance(470_000);
  await w.tick();
  assert.equal(socket.sent.filter((f) => f.type === "refresh").length, 1, "rescheduled, not due yet");
  assert.equal(w.sockets.length, 1, "no reconnect: delivery never paused");
});

test("a refused refresh is reported and asked again while the old token holds", async () => {
  let n = 0;
  const w = world();
  w.wrapper.configure({ token: () => `tok-${++n}` });
  w.wrapper.load(() => {});
  await w.tick();
  const socket = w.last();
  socket.open();
  socket.deliver({ ...WELCOME, expiresAt: Math.floor(w.env.now() / 1000) + 10 });
  await w.advance(8000);
  await w.tick();
  socket.deliver({ type: "nack", id: null, code: "refresh_refused", message: "refresh: token expired" });
  assert.equal(w.errors.at(-1).code, "refresh_refused");
  await w.advance(5000);
  await w.tick();
  assert.equal(socket.sent.filter((f) => f.type === "refresh").length, 2);
});

const LIGHTNING = "https://acme.lightning.force.com";
const ADAPTER = {
  protocol: "https:",
  search: "?mode=Lightning&ltn_app_id=06m8A0000004TQ1QAM&isdtp=vw&sfdcIframeOrigin=" +
    encodeURIComponent(LIGHTNING) + "&clc=1",
};

/** A stand-in sforce.opencti following the documented signatures; records what it is asked. */
function fakeOpenCti(runApexAnswer) {
  const api = {
    listeners: [],
    enabled: 0,
    apexCalls: [],
    onClickToDial: ({ listener }) => api.listeners.push(listener),
    enableClickToDial: ({ callback }) => { api.enabled += 1; if (callback) callback({ success: true }); },
    runApex: (request) => { api.apexCalls.push(request); request.callback(runApexAnswer()); },
    searchAndScreenPop: () => {},
    settings: null,
    getCallCenterSettings: ({ callback }) =>
      callback(api.settings ? { success: true, returnValue: api.settings } : { success: false, errors: ["no call center"] }),
    click: (number) => api.listeners.forEach((l) => l({ number, recordId: "003Hs00000ABCDeIAX" })),
  };
  return api;
}

test("the Salesforce origin comes from sfdcIframeOrigin, checked as Open CTI checks it", () => {
  assert.equal(salesforceOriginOf(ADAPTER.search, "https:"), LIGHTNING);
  assert.equal(salesforceOriginOf(ADAPTER.search, "http:"), null, "another protocol");
  assert.equal(salesforceOriginOf("?sfdcIframeOrigin=https%3A%2F%2Fevil.example.com", "https:"), null);
  assert.equal(salesforceOriginOf("?mode=Lightning", "https:"), null);
  assert.equal(
    salesforceOriginOf("?sfdcIframeOrigin=https%3A%2F%2Facme--c.vf.force.com%3A8443", "https:"),
    "https://acme--c.vf.force.com:8443"
  );
});

test("Open CTI is loaded from the Salesforce origin, and click-to-dial wired once", async () => {
  const loaded = [];
  const options = { location: ADAPTER };
  options.loadScript = async (url) => { loaded.push(url); options.sforce = fakeOpenCti(); };
  const w = world(options);
  w.wrapper.load(() => {});
  w.wrapper.load(() => {}); // a second load must not register a second listener
  await w.advance(300);
  await w.tick();
  assert.deepEqual(loaded, [`${LIGHTNING}/support/api/62.0/lightning/opencti_min.js`]);
  assert.equal(options.sforce.listeners.length, 1);
  assert.equal(options.sforce.enabled, 1);
  w.last().open();
  w.last().deliver(WELCOME);
  options.sforce.click("+18449401117");
  const dials = w.last().sent.filter((f) => f.name === "startCallRequested");
  assert.equal(dials.length, 1);
  assert.deepEqual(dials[0].data, { dialTo: "+18449401117", recordId: "003Hs00000ABCDeIAX" });
});

test("Open CTI that the page loads after the wrapper still gets click-to-dial, once", async () => {
  const options = {};
  const w = world(options);
  w.wrapper.load(() => {});
  await w.advance(1000);
  options.sforce = fakeOpenCti();
  await w.advance(300);
  await w.advance(300);
  assert.equal(options.sforce.listeners.length, 1);
  assert.deepEqual(w.errors, []);
});

test("the token comes from runApex as the agent when a Salesforce class is configured", async () => {
  const options = { location: ADAPTER };
  options.sforce = fakeOpenCti(() => ({ success: true, returnValue: { runApex: "apex.jwt.sig" }, errors: null }));
  const w = world(options);
  w.wrapper.configure({ salesforce: { apexClass: "SoftphoneRelayToken", methodName: "mint" } });
  w.wrapper.load(() => {});
  await w.tick();
  await w.tick();
  w.last().open();
  assert.equal(w.last().sent[0].token, "apex.jwt.sig");
  const call = options.sforce.apexCalls[0];
  assert.deepEqual([call.apexClass, call.methodName, call.methodParams], ["SoftphoneRelayToken", "mint", "none"]);
});

test("a failed runApex is reported and retried with backoff", async () => {
  const options = { location: ADAPTER };
  options.sforce = fakeOpenCti(() => ({ success: false, returnValue: null, errors: ["No access to SoftphoneRelayToken"] }));
  const w = world(options);
  w.wrapper.configure({ salesforce: { apexClass: "SoftphoneRelayToken" } });
  w.wrapper.load(() => {});
  await w.tick();
  await w.tick();
  assert.equal(w.sockets.length, 0);
  assert.equal(w.errors[0].code, "token_failed");
  assert.match(w.errors[0].message, /No access to SoftphoneRelayToken/);
  assert.equal(w.wrapper.state(), "waiting");
});

test("when Salesforce opened the page but Open CTI never appears, onError says why", async () => {
  const options = { location: ADAPTER, loadScript: async () => { throw new Error("blocked"); } };
  const w = world(options);
  w.wrapper.load(() => {});
  for (let i = 0; i < 130; i++) await w.advance(250);
  const unavailable = w.errors.filter((e) => e.code === "open_cti_unavailable");
  assert.equal(unavailable.length, 1);
  assert.match(unavailable[0].message, /did not load from https:\/\/acme\.lightning\.force\.com/);
});

test("outside Salesforce no Open CTI is no error", async () => {
  const w = world({});
  w.wrapper.load(() => {});
  for (let i = 0; i < 130; i++) await w.advance(250);
  assert.deepEqual(w.errors.filter((e) => e.code === "open_cti_unavailable"), []);
});

test("two tabs sharing one storage never erase each other's unacked events", () => {
  const storage = memoryStorage();
  const a = new Outbox(storage, "softphone-relay:x:outbox");
  const b = new Outbox(storage, "softphone-relay:x:outbox");
  a.add({ type: "event", id: "a1", at: "2026-11-25T10:00:00.000Z" });
  b.add({ type: "event", id: "b1", at: "2026-11-25T10:00:00.500Z" });
  a.add({ type: "event", id: "a2", at: "2026-11-25T10:00:01.000Z" });
  a.remove("a1");
  assert.deepEqual(b.list().map((f) => f.id), ["b1", "a2"], "in the order the hooks were called");
  assert.deepEqual(new Outbox(storage, "softphone-relay:x:outbox").list().map((f) => f.id), ["b1", "a2"]);
});

test("an outbox saved by an earlier version is taken over event by event", () => {
  const legacy = [{ type: "event", id: "e1", at: "2026-11-25T10:00:00Z" }, { type: "event", id: "e2", at: "2026-11-25T10:00:01Z" }];
  const storage = memoryStorage({ "k": JSON.stringify(legacy) });
  const outbox = new Outbox(storage, "k");
  assert.deepEqual(outbox.list().map((f) => f.id), ["e1", "e2"]);
  assert.equal(storage.getItem("k"), null);
});

test("a full storage is reported once and the events still go out from memory", async () => {
  const storage = memoryStorage();
  const w = world({ storage });
  const socket = await connected(w);
  storage.setItem = (key) => {
    if (key.includes(":outbox:")) throw new Error("QuotaExceededError");
  };
  w.wrapper.callAccepted({ partnerId: "p", conversationId: "c1" });
  w.wrapper.callEnded({ partnerId: "p", conversationId: "c1" });
  const sent = socket.sent.filter((f) => f.type === "event").map((f) => f.name);
  assert.deepEqual(sent, ["callAccepted", "callEnded"]);
  assert.equal(w.errors.filter((e) => e.code === "storage_failed").length, 1);
  assert.equal(w.wrapper.outboxSize(), 2);
});

test("a replaced tab's events are sent by the live tab of the same agent", async () => {
  const storage = memoryStorage();
  const listeners = [];
  const onStorage = (listener) => listeners.push(listener);
  const live = world({ storage, onStorage });
  const liveSocket = await connected(live);
  const replaced = world({ storage });
  const replacedSocket = await connected(replaced);
  replacedSocket.drop(4409, "replaced");
  assert.equal(replaced.wrapper.state(), "stopped");
  const id = replaced.wrapper.callNotesSubmitted({ partnerId: "p", conversationId: "c1", notes: "n" });
  // The browser tells the other tabs: a storage event for the key just written.
  const key = Object.keys(storage.data).find((k) => k.endsWith(":" + id));
  listeners.forEach((listener) => listener(key, storage.data[key]));
  assert.deepEqual(liveSocket.sent.filter((f) => f.type === "event").map((f) => f.id), [id]);
  liveSocket.deliver({ type: "ack", id, seq: "1-0", duplicate: false });
  assert.equal(live.wrapper.outboxSize(), 0);
  assert.equal(replaced.wrapper.outboxSize(), 0, "acked for both tabs: nothing to resend on reload");
});

test("a fixed token string is not refreshed with itself", async () => {
  const w = world();
  const socket = await connected(w);
  socket.deliver({ type: "refreshed", expiresAt: Math.floor(w.env.now() / 1000) + 10 });
  await w.advance(20_000);
  await w.tick();
  assert.equal(socket.sent.filter((f) => f.type === "refresh").length, 0);
});

test("an https: page given a ws:// relay URL gets insecure_url and opens no socket", async () => {
  const w = world({ location: { protocol: "https:", search: "" } });
  w.wrapper.configure({ url: "ws://relay/v1/socket" });
  w.wrapper.load(() => {});
  await w.tick();
  assert.equal(w.sockets.length, 0);
  assert.equal(w.wrapper.state(), "idle");
  assert.deepEqual(w.errors.map((e) => e.code), ["insecure_url"]);
  assert.match(w.errors[0].message, /ws:\/\/relay\/v1\/socket.*wss:\/\//);
  w.wrapper.configure({ url: "wss://relay/v1/socket" });
  w.wrapper.load(() => {});
  await w.tick();
  assert.equal(w.sockets.length, 1);
});

test("a ws:// URL to this machine stays allowed on an https: page, as browsers allow it", async () => {
  for (const url of ["ws://127.0.0.1:8765/v1/socket", "ws://localhost/v1/socket", "ws://[::1]:8765/v1/socket"]) {
    const w = world({ location: { protocol: "https:", search: "" } });
    w.wrapper.configure({ url });
    w.wrapper.load(() => {});
    await w.tick();
    assert.equal(w.sockets.length, 1, url);
    assert.deepEqual(w.errors, []);
  }
});

test("an sfdcIframeOrigin that is no Salesforce origin is named as such, not as missing", async () => {
  const search = "?mode=Lightning&sfdcIframeOrigin=" + encodeURIComponent("https://crm.example.com");
  const w = world({ location: { protocol: "https:", search } });
  w.wrapper.configure({ salesforce: { apexClass: "SoftphoneRelayToken", methodName: "mint" } });
  w.wrapper.load(() => {});
  for (let i = 0; i < 130; i++) await w.advance(250);
  const [unavailable] = w.errors.filter((e) => e.code === "open_cti_unavailable");
  assert.match(unavailable.message, /sfdcIframeOrigin https:\/\/crm\.example\.com is not a Salesforce origin/);
  assert.doesNotMatch(unavailable.message, /no sfdcIframeOrigin/);
});

test("opened by a call center with no URL configured, the wrapper takes the relay and the token class from it", async () => {
  const options = { location: ADAPTER };
  options.loadScript = async () => {
    options.sforce = fakeOpenCti(() => ({ success: true, returnValue: { runApex: "apex-token" } }));
    options.sforce.settings = {
      "/reqGeneralInfo/reqAdapterUrl": "https://softphone.example.com/agent",
      "/softphoneRelay/relayUrl": "wss://relay.example.com/v1/socket",
      "/softphoneRelay/tokenApexClass": "SoftphoneRelayToken",
      "/softphoneRelay/tokenApexMethod": "mint",
    };
  };
  const w = world(options);
  w.wrapper.configure({ url: null, token: null });
  w.wrapper.load(() => {});
  await w.advance(300);
  await w.tick();
  assert.equal(w.sockets.length, 1);
  assert.equal(w.last().url, "wss://relay.example.com/v1/socket");
  assert.deepEqual(options.sforce.apexCalls.map((c) => [c.apexClass, c.methodName]), [["SoftphoneRelayToken", "mint"]]);
  w.last().open();
  assert.equal(w.last().sent[0].token, "apex-token");
});

test("a call center definition without the relay's URL is reported, and nothing opens", async () => {
  const options = { location: ADAPTER };
  options.loadScript = async () => { options.sforce = fakeOpenCti(); options.sforce.settings = {}; };
  const w = world(options);
  w.wrapper.configure({ url: null });
  w.wrapper.load(() => {});
  await w.advance(300);
  await w.tick();
  assert.equal(w.sockets.length, 0);
  const [error] = w.errors.filter((e) => e.code === "call_center_settings_failed");
  assert.match(error.message, /\/softphoneRelay\/relayUrl/);
});
