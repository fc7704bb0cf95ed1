// The softphone-relay connector for Salesforce Voice with Partner Telephony: what Salesforce
// asks of a partner's connector (through @salesforce/scv-connector-base, scv.mjs), answered
// from the relay. The softphone keeps its own window and controls (Salesforce's desk-phone
// model): this connector publishes the agent's calls as the softphone reports them (the relay's
// feed), turns Salesforce's dial and status changes into requests, and turns every call
// control off (each one, if used anyway, answers with the kit's custom label telling the agent
// to use the softphone).
import { CallBook, PresenceTable } from "./calls.mjs";
import * as scv from "./scv.mjs";
import { RelaySession } from "./session.mjs";

/** How long a dial from Salesforce waits for the softphone to place the call. */
export const DIAL_WAIT_MS = 45000;
/** How long Salesforce's init waits for the relay's welcome before it is told it failed. */
export const INIT_WAIT_MS = 20000;
const EVENT = scv.Constants.EVENT_TYPE;
/** The custom label (in the kit) Salesforce shows when a call control is used anyway. */
export const USE_SOFTPHONE_LABEL = "SoftphoneRelayUseSoftphone";

/**
 * @typedef {{url: string, token: () => Promise<string>, namespace?: string,
 *   storage?: Storage|null, WebSocket?: typeof WebSocket}} ConnectorOptions
 *   url: the relay's socket (wss://HOST/v1/socket); token: the agent's relay token (the kit's
 *   connector page mints it through Apex as the logged-in user); namespace: the kit's
 *   namespace for its custom label ("c" when installed unpackaged).
 */

/** @param {import("./calls.mjs").Call} call */
function phoneCall(call) {
  const ended = call.state === "ended";
  const info = new scv.CallInfo({
    isOnHold: false,
    isSoftphoneCall: false,
    callStateTimestamp: new Date(),
    acceptEnabled: false,
    declineEnabled: false,
    muteEnabled: false,
    swapEnabled: false,
    conferenceEnabled: false,
    holdEnabled: false,
    recordEnabled: false,
    addCallerEnabled: false,
    extensionEnabled: false,
    showMuteButton: false,
    showRecordButton: false,
    showAddCallerButton: false,
    showAddBlindTransferButton: false,
    showMergeButton: false,
    showSwapButton: false,
  });
  /** @type {Record<string, unknown>} */
  const attributes = { participantType: scv.Constants.PARTICIPANT_TYPE.INITIAL_CALLER };
  if (call.voiceCallId) attributes.voiceCallId = call.voiceCallId;
  return new scv.PhoneCall({
    callId: call.callId,
    callType: call.callType,
    state: call.state,
    phoneNumber: call.phoneNumber,
    callInfo: info,
    callAttributes: new scv.PhoneCallAttributes(attributes),
    reason: ended ? call.reason : undefined,
    agentStatus: ended ? call.agentStatus : undefined,
  });
}

/** The SDK's object for Salesforce; call ``scv.initializeConnector`` with it.
 * @param {ConnectorOptions} options */
export function createConnector(options) {
  const session = new RelaySession({
    url: options.url,
    token: options.token,
    storage: options.storage === undefined ? globalThis.sessionStorage || null : options.storage,
    WebSocket: options.WebSocket,
    client: "softphone-relay-connector/1 scv/" + scv.SDK_MAJOR,
    onWelcome: welcomed,
    onItem: fed,
    onStop: stopped,
  });
  const kept = session.read().extra || {};
  const book = new CallBook(kept.calls);
  let presence = new PresenceTable({}, {});
  /** @type {string|null} the status Salesforce last set, to keep its echo from coming back */
  let salesforceStatus = kept.status || null;
  /** @type {string|null} the softphone's last status */
  let softphoneStatus = kept.softphoneStatus || null;
  /** @type {Record<string, any>} */
  let config = {};
  /** @type {Map<number, {resolve: (r: any) => void, reject: (e: Error) => void}>} */
  const dials = new Map();
  /** @type {((value?: unknown) => void)|null} */
  let ready = null;

  function keep() {
    session.keep({ calls: book.calls, status: salesforceStatus, softphoneStatus });
  }

  function refuse() {
    return Promise.reject(
      new scv.CustomError({
        labelName: USE_SOFTPHONE_LABEL,
        namespace: options.namespace || "c",
        message: "Use your softphone for this: its window controls the call.",
      })
    );
  }

  /** @param {any} sent */
  function welcomed(sent) {
    presence = new PresenceTable(sent.presence || {}, config.userPresenceStatuses || {});
    if (ready) ready();
    ready = null;
  }

  /** The relay refused this session for good (4400, 4403) or a newer connector page of the
   * agent took over (4409: nothing to tell, the newer page speaks for the agent).
   * @param {number} code @param {string} reason */
  function stopped(code, reason) {
    if (code === 4409) return;
    scv.publishError({
      eventType: EVENT.AGENT_ERROR,
      error: new Error(`the relay refused the connector (${code}): ${reason}`),
    });
  }

  /** @param {string} name @param {any} data */
  function fed(name, data) {
    if (name === "status") {
      softphoneStatus = data.softphoneId;
      const statusId = presence.salesforceOf(data.softphoneId);
      if (statusId !== null && statusId !== salesforceStatus) {
        salesforceStatus = statusId;
        scv.publishEvent({
          eventType: EVENT.SET_AGENT_STATUS,
          payload: new scv.AgentStatusInfo({ statusId }),
        });
      }
      keep();
      return;
    }
    if (name !== "call") return;
    for (const publication of book.apply(data, Date.now())) {
      const call = phoneCall(publication.call);
      switch (publication.type) {
        case "DIALED": {
          const waiting = dials.get(publication.dial);
          dials.delete(publication.dial);
          if (waiting) waiting.resolve(new scv.CallResult({ call }));
          break;
        }
        case "HANGUP":
          later(EVENT.HANGUP, new scv.HangupResult({ calls: [call] }));
          break;
        case "AFTER_CALL_WORK_STARTED":
          later(EVENT.AFTER_CALL_WORK_STARTED, { callId: call.callId });
          break;
        default: // CALL_STARTED, CALL_CONNECTED
          later(EVENT[publication.type], new scv.CallResult({ call }));
      }
    }
    book.prune();
    keep();
  }

  /** Publish once the SDK has answered a pending dial (its CALL_STARTED goes first), in
   * the order the feed said.
   * @param {string} eventType @param {object} payload */
  function later(eventType, payload) {
    setTimeout(() => scv.publishEvent({ eventType, payload }), 0);
  }

  const impl = {
    /** @param {any} connectorConfig */
    init(connectorConfig) {
      config = connectorConfig || {};
      const opened = new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error("the relay did not welcome the connector in time")),
          INIT_WAIT_MS
        );
        ready = () => {
          clearTimeout(timer);
          resolve(undefined);
        };
      });
      session.start();
      return opened.then(() => new scv.InitResult({}));
    },
    getAgentConfig() {
      const desk = scv.Constants.PHONE_TYPE.DESK_PHONE;
      return Promise.resolve(
        new scv.AgentConfigResult({ phones: [desk], selectedPhone: new scv.Phone({ type: desk }) })
      );
    },
    getActiveCalls() {
      const activeCalls = book.active().map(phoneCall);
      return Promise.resolve(new scv.ActiveCallsResult({ activeCalls }));
    },
    /** @param {any} contact */
    dial(contact) {
      const parts = [contact && contact.prefix, contact && contact.phoneNumber];
      const number = parts.filter(Boolean).join("");
      if (!number) return Promise.reject(new Error("nothing to dial"));
      const id = book.dial(number, Date.now() + DIAL_WAIT_MS);
      /** @type {Record<string, unknown>} */
      const request = { dialTo: number };
      if (contact.recordId) request.recordId = contact.recordId;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          dials.delete(id);
          book.forget(id);
          reject(new Error("the softphone did not place the call"));
        }, DIAL_WAIT_MS);
        dials.set(id, {
          resolve: (result) => { clearTimeout(timer); resolve(result); },
          reject: (error) => { clearTimeout(timer); reject(error); },
        });
        session.request("startCallRequested", request).catch((error) => {
          dials.delete(id);
          book.forget(id);
          clearTimeout(timer);
          reject(error);
        });
      });
    },
    /** @param {string} _agentStatus @param {any} statusInfo */
    setAgentStatus(_agentStatus, statusInfo) {
      const info = statusInfo || {};
      const softphoneId = presence.softphoneOf(info);
      salesforceStatus = info.statusId || salesforceStatus;
      keep();
      if (softphoneId === null || softphoneId === softphoneStatus) {
        return Promise.resolve(new scv.GenericResult({ success: true }));
      }
      return session
        .request("presenceUpdateRequested", { softphoneId })
        .then(() => new scv.GenericResult({ success: true }));
    },
    getAgentStatus() {
      if (softphoneStatus === null) return Promise.reject(new Error("the softphone has not said"));
      return Promise.resolve(
        new scv.AgentVendorStatusInfo({ statusId: softphoneStatus, statusType: "", statusName: "" })
      );
    },
    logout() {
      session.stop();
      return Promise.resolve(new scv.LogoutResult({ success: true }));
    },
    getPhoneContacts() {
      return Promise.resolve(new scv.PhoneContactsResult({ contacts: [] }));
    },
    handleMessage() {},
    wrapUpCall() {},
    acceptCall: refuse,
    declineCall: refuse,
    endCall: refuse,
    mute: refuse,
    unmute: refuse,
    hold: refuse,
    resume: refuse,
    swap: refuse,
    conference: refuse,
    addParticipant: refuse,
    pauseRecording: refuse,
    resumeRecording: refuse,
    sendDigits: refuse,
    setAgentConfig: refuse,
    getSignedRecordingUrl: refuse,
    superviseCall: refuse,
    supervisorDisconnect: refuse,
    supervisorBargeIn: refuse,
  };
  return scv.connectorClass(impl);
}

/**
 * Start the connector in Salesforce's frame: the SDK waits for Salesforce's SETUP_CONNECTOR.
 * @param {ConnectorOptions} options
 */
export function start(options) {
  scv.initializeConnector(createConnector(options));
}
