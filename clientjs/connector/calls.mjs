// @ts-check
// The connector's pure state: the agent's calls as Salesforce sees them, the dials Salesforce is
// waiting on, and the presence table both ways. No SDK, no socket, no DOM: fed the relay's feed
// items (relay/wire/connector.py), it says what to publish to Salesforce, as plain objects that
// connector.mjs turns into the SDK's classes.

/** Salesforce's HANGUP agent statuses for a call that never connected (its HANGUP_STATUS). */
export const DECLINED_BY_AGENT = "DeclinedByAgent";
export const MISSED_CALL_AGENT = "MissedCallAgent";

/**
 * @typedef {{callId: string, callType: "Inbound"|"Outbound", state: "ringing"|"connected"|"ended",
 *   phoneNumber?: string, voiceCallId?: string, reason?: string, agentStatus?: string}} Call
 * @typedef {{type: "CALL_STARTED"|"CALL_CONNECTED"|"HANGUP"|"AFTER_CALL_WORK_STARTED", call: Call}
 *   | {type: "DIALED", call: Call, dial: number}} Publication
 *   DIALED: the pending dial ``dial`` is answered with ``call`` (the SDK then publishes
 *   CALL_STARTED itself).
 * @typedef {{conversationId: string, callType: "Inbound"|"Outbound",
 *   state: "ringing"|"connected"|"ended", callerANI?: string, dialledTo?: string,
 *   voiceCallId?: string, reason?: "ended"|"declined"|"missed", afterCallWork?: boolean}} CallItem
 */

/** A number's digits, for matching a dialled number however it was written. @param {string} n */
export function digitsOf(n) {
  return String(n || "").replace(/\D/g, "");
}

/**
 * Whether two numbers are the same line: equal digits, or one the other's national tail
 * (Salesforce dials what the record holds, "(844) 940-1117"; the softphone reports E.164).
 * @param {string} a @param {string} b
 */
export function sameNumber(a, b) {
  const x = digitsOf(a);
  const y = digitsOf(b);
  if (x.length < 4 || y.length < 4) return false;
  return x === y || (x.length > y.length ? x.endsWith(y) : y.endsWith(x));
}

export class CallBook {
  /** @param {Record<string, Call>} [calls] the calls kept across a page reload */
  constructor(calls) {
    /** @type {Record<string, Call>} */
    this.calls = { ...(calls || {}) };
    /** @type {{id: number, number: string, until: number}[]} */
    this.dials = [];
    this.nextDial = 1;
  }

  /** The calls not ended, oldest first (what getActiveCalls answers). @returns {Call[]} */
  active() {
    return Object.values(this.calls).filter((c) => c.state !== "ended");
  }

  /**
   * Salesforce asked to dial ``number``: a pending dial, answered by the softphone's
   * outbound call to that number until ``until`` (ms). @returns {number} its id
   * @param {string} number @param {number} until
   */
  dial(number, until) {
    const id = this.nextDial++;
    this.dials.push({ id, number, until });
    return id;
  }

  /** The dial is over (answered, refused or timed out). @param {number} id */
  forget(id) {
    this.dials = this.dials.filter((d) => d.id !== id);
  }

  /**
   * One feed item's publications, in order.
   * @param {CallItem} item @param {number} now ms
   * @returns {Publication[]}
   */
  apply(item, now) {
    const id = item.conversationId;
    const known = this.calls[id];
    /** @type {Call} */
    const call = known
      ? { ...known }
      : { callId: id, callType: item.callType, state: "ringing" };
    const number = item.callerANI || item.dialledTo;
    if (number) call.phoneNumber = number;
    if (item.voiceCallId) call.voiceCallId = item.voiceCallId;
    /** @type {Publication[]} */
    const out = [];
    if (item.state === "ringing") {
      if (known) return out; // told twice (a redelivery): said once
      this.calls[id] = call;
      const ringing = { ...call };
      if (call.callType === "Inbound") return [{ type: "CALL_STARTED", call: ringing }];
      const dial = this.dials.find((d) => d.until >= now && sameNumber(d.number, number || ""));
      if (dial) {
        this.forget(dial.id);
        out.push({ type: "DIALED", call: ringing, dial: dial.id });
      } else {
        out.push({ type: "CALL_STARTED", call: ringing });
      }
      // The contract has no "answered" hook for an outbound call: it is live once placed.
      call.state = "connected";
      out.push({ type: "CALL_CONNECTED", call: { ...call } });
      return out;
    }
    if (!known && item.state === "ended") return out; // never shown: nothing to close
    if (!known) out.push({ type: "CALL_STARTED", call: { ...call } }); // its ring expired unseen
    if (item.state === "connected") {
      if (known && known.state !== "ringing") return out;
      call.state = "connected";
      this.calls[id] = call;
      out.push({ type: "CALL_CONNECTED", call: { ...call } });
      return out;
    }
    if (known && known.state === "ended") return out;
    call.state = "ended";
    if (item.reason === "ended") {
      call.reason = "ended";
    } else {
      call.reason = "error";
      call.agentStatus = item.reason === "declined" ? DECLINED_BY_AGENT : MISSED_CALL_AGENT;
    }
    this.calls[id] = call;
    out.push({ type: "HANGUP", call: { ...call } });
    if (item.afterCallWork) out.push({ type: "AFTER_CALL_WORK_STARTED", call: { ...call } });
    return out;
  }

  /** Forget ended calls (after they were published), keeping the book small. */
  prune() {
    for (const [id, call] of Object.entries(this.calls)) {
      if (call.state === "ended") delete this.calls[id];
    }
  }
}

/**
 * The partner's presence table (Salesforce status name → softphone status id), both ways, with
 * the org's statuses (``userPresenceStatuses``: status id → {statusName}).
 */
export class PresenceTable {
  /**
   * @param {Record<string, string>} byName
   * @param {Record<string, {statusName?: string}>} [statuses]
   */
  constructor(byName, statuses) {
    this.byName = byName || {};
    this.statuses = statuses || {};
  }

  /**
   * The softphone status for a Salesforce status (by its id, or its name), or null.
   * @param {{statusId?: string, statusName?: string}} info
   * @returns {string|null}
   */
  softphoneOf(info) {
    const named = info.statusId && this.statuses[info.statusId];
    const name = (named && named.statusName) || info.statusName || "";
    return Object.prototype.hasOwnProperty.call(this.byName, name) ? this.byName[name] : null;
  }

  /**
   * The Salesforce status id for a softphone status, or null when none is mapped to it or the
   * org has no status of that name.
   * @param {string} softphoneId
   * @returns {string|null}
   */
  salesforceOf(softphoneId) {
    const name = Object.keys(this.byName).find((n) => this.byName[n] === softphoneId);
    if (name === undefined) return null;
    const id = Object.keys(this.statuses).find((s) => this.statuses[s].statusName === name);
    return id === undefined ? null : id;
  }
}
