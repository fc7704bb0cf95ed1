// The connector's pure state (connector/calls.mjs): feed items in, what Salesforce is told out.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CallBook, PresenceTable, sameNumber } from "../connector/calls.mjs";
import { reconnectDelay } from "../connector/session.mjs";

const ID = "5b1f0c1e-6f8e-4d5e-9a51-3c1e0f6a7b21";
const inbound = { conversationId: ID, callType: "Inbound" };
const kinds = (publications) => publications.map((p) => p.type);

test("an inbound call rings with its VoiceCall, connects, and ends into after-call work", () => {
  const book = new CallBook();
  const rang = book.apply(
    { ...inbound, state: "ringing", callerANI: "+18883973342", voiceCallId: "0LQHs000000AbCdOAK" },
    0
  );
  assert.deepEqual(rang, [
    {
      type: "CALL_STARTED",
      call: {
        callId: ID,
        callType: "Inbound",
        state: "ringing",
        phoneNumber: "+18883973342",
        voiceCallId: "0LQHs000000AbCdOAK",
      },
    },
  ]);
  assert.deepEqual(kinds(book.apply({ ...inbound, state: "connected" }, 1)), ["CALL_CONNECTED"]);
  const ended = book.apply({ ...inbound, state: "ended", reason: "ended", afterCallWork: true }, 2);
  assert.deepEqual(kinds(ended), ["HANGUP", "AFTER_CALL_WORK_STARTED"]);
  assert.equal(ended[0].call.reason, "ended");
  assert.equal(ended[0].call.voiceCallId, "0LQHs000000AbCdOAK");
  assert.deepEqual(book.active(), []);
});

test("an item told twice is published once", () => {
  const book = new CallBook();
  book.apply({ ...inbound, state: "ringing" }, 0);
  assert.deepEqual(book.apply({ ...inbound, state: "ringing" }, 0), []);
  book.apply({ ...inbound, state: "connected" }, 0);
  assert.deepEqual(book.apply({ ...inbound, state: "connected" }, 0), []);
  book.apply({ ...inbound, state: "ended", reason: "ended" }, 0);
  assert.deepEqual(book.apply({ ...inbound, state: "ended", reason: "ended" }, 0), []);
});

test("a rejected call hangs up as declined by the agent or missed", () => {
  for (const [reason, status] of [["declined", "DeclinedByAgent"], ["missed", "MissedCallAgent"]]) {
    const book = new CallBook();
    book.apply({ ...inbound, state: "ringing" }, 0);
    const [hangup] = book.apply({ ...inbound, state: "ended", reason }, 1);
    const { type, call } = hangup;
    assert.deepEqual([type, call.reason, call.agentStatus], ["HANGUP", "error", status]);
  }
});

test("an outbound call answers the dial Salesforce waits on, then is connected", () => {
  const book = new CallBook();
  const dial = book.dial("(844) 940-1117", 10_000);
  const out = book.apply(
    { conversationId: ID, callType: "Outbound", state: "ringing", dialledTo: "+18449401117" },
    5_000
  );
  assert.deepEqual(kinds(out), ["DIALED", "CALL_CONNECTED"]);
  assert.equal(out[0].dial, dial);
  assert.equal(out[0].call.state, "ringing");
  assert.deepEqual(book.dials, []);
});

test("an outbound call nobody dialled from Salesforce is started on its own", () => {
  const book = new CallBook();
  book.dial("+18449401117", 1_000);
  const late = book.apply(
    { conversationId: ID, callType: "Outbound", state: "ringing", dialledTo: "+18449401117" },
    2_000
  );
  assert.deepEqual(kinds(late), ["CALL_STARTED", "CALL_CONNECTED"]);
});

test("a call whose ring was never seen is started before it connects", () => {
  const book = new CallBook();
  assert.deepEqual(kinds(book.apply({ ...inbound, state: "connected" }, 0)), [
    "CALL_STARTED",
    "CALL_CONNECTED",
  ]);
});

test("the end of a call Salesforce was never shown announces nothing", () => {
  const book = new CallBook();
  assert.deepEqual(book.apply({ ...inbound, state: "ended", reason: "ended" }, 0), []);
  assert.deepEqual(book.active(), []);
});

test("the calls kept across a reload are the active ones", () => {
  const book = new CallBook();
  book.apply({ ...inbound, state: "ringing" }, 0);
  const reloaded = new CallBook(JSON.parse(JSON.stringify(book.calls)));
  assert.deepEqual(reloaded.active().map((c) => c.callId), [ID]);
  const connected = reloaded.apply({ ...inbound, state: "connected" }, 1);
  assert.deepEqual(kinds(connected), ["CALL_CONNECTED"]);
});

test("numbers match by digits, however the record wrote them", () => {
  assert.ok(sameNumber("(844) 940-1117", "+18449401117"));
  assert.ok(sameNumber("+1 844 940 1117", "+18449401117"));
  assert.ok(!sameNumber("+18449401118", "+18449401117"));
  assert.ok(!sameNumber("", "+18449401117"));
});

test("presence maps both ways through the org's status names", () => {
  const table = new PresenceTable(
    { "Available for Voice": "ready-1", Busy: "busy-1" },
    { "0N5Hs0000000001": { statusName: "Available for Voice" }, "0": { statusName: "Offline" } }
  );
  assert.equal(table.softphoneOf({ statusId: "0N5Hs0000000001" }), "ready-1");
  assert.equal(table.softphoneOf({ statusName: "Busy" }), "busy-1");
  assert.equal(table.softphoneOf({ statusId: "0" }), null);
  assert.equal(table.salesforceOf("ready-1"), "0N5Hs0000000001");
  assert.equal(table.salesforceOf("busy-1"), null); // the org has no status of that name
});

test("reconnects back off exponentially, capped, with jitter", () => {
  assert.equal(reconnectDelay(1, 0), 250);
  assert.equal(reconnectDelay(1, 0.999), 500);
  assert.equal(reconnectDelay(20, 0), 15000);
  assert.ok(reconnectDelay(20, 0.999) <= 30000);
});
