// Type declarations for softphone.js, the softphone-relay wrapper library (softphone.v1).

/** The contract's hooks: each a method of the wrapper that logs one event. */
export type HookName =
  | "incomingCall"
  | "callAccepted"
  | "callRejected"
  | "callEnded"
  | "callNotesSubmitted"
  | "outboundCallInitiated"
  | "statusChanged";

/** What the softphone's callback receives: (eventType, payload). */
export type CommandName =
  | "start_call"
  | "update_presence"
  | "get_presence"
  | "disposition"
  | "partner_config";

export type SoftphoneCallback = (eventType: CommandName, payload: unknown) => void;

/** A hook's params: an object, a JSON string of one, or nothing. */
export type HookParams = Record<string, unknown> | string | undefined | null;

export interface WrapperError {
  /** e.g. invalid_event, replaced, forbidden, heartbeat_timeout, token_failed,
   *  refresh_refused, open_cti_unavailable, insecure_url (a ws:// URL on an https: page),
   *  call_center_settings_failed (no relayUrl in the call center definition) */
  code: string;
  message: string;
  detail?: unknown;
}

export interface WrapperOptions {
  /** The relay's socket: ws(s)://HOST:PORT/v1/socket */
  url?: string;
  /** The agent's token, or a function returning it (or a promise of it). */
  token?: string | ((hint: { fresh: boolean }) => string | Promise<string>) | null;
  /** Fetched with credentials; answers the token as text or {"token": "..."}. */
  tokenUrl?: string | null;
  /**
   * Get the token from Salesforce: Open CTI's runApex calls this webService method as the
   * logged-in agent (the kit's SoftphoneRelayToken.mint). Takes precedence over token/tokenUrl.
   */
  salesforce?: { apexClass: string; methodName?: string; methodParams?: string } | null;
  /** Pop the caller's record in Salesforce on incomingCall (Open CTI searchAndScreenPop). */
  screenPop?: boolean;
  /** Called for every reported problem (also written to the console). */
  onError?: ((error: WrapperError) => void) | null;
}

export type WrapperState = "idle" | "connecting" | "open" | "waiting" | "stopped";

export interface SoftphoneWrapper {
  readonly version: string;
  configure(options: WrapperOptions): SoftphoneWrapper;
  /** callback: a function, or the name of a global function. */
  load(callback: SoftphoneCallback | string): SoftphoneWrapper;
  /** Each hook returns the id of the event it made. */
  incomingCall(params?: HookParams): string;
  callAccepted(params: HookParams): string;
  callRejected(params: HookParams): string;
  callEnded(params: HookParams): string;
  callNotesSubmitted(params: HookParams): string;
  outboundCallInitiated(params: HookParams): string;
  statusChanged(params: HookParams): string;
  /** Listen to open, closed, command, expired, outbox, reconnecting, refreshed, error. */
  on(listener: (kind: string, detail: unknown) => void): SoftphoneWrapper;
  outboxSize(): number;
  state(): WrapperState;
  stop(): void;
}

/** The library's pure parts and its factory (Node's require() returns these). */
export interface WrapperParts {
  readonly VERSION: string;
  readonly HOOKS: readonly HookName[];
  readonly COMMANDS: readonly CommandName[];
  /** A wrapper bound to an environment (the browser's, or fakes in tests). */
  createWrapper(env: object): SoftphoneWrapper;
  parseParams(hook: string, params: HookParams): Record<string, unknown>;
  backoffDelay(attempt: number, options?: { base?: number; cap?: number }, random?: () => number): number;
  isExpired(...args: never[]): boolean;
  salesforceOriginOf(...args: never[]): string | null;
  pickStorage(...args: never[]): unknown;
  Outbox: (...args: never[]) => unknown;
  HandledCommands: (...args: never[]) => unknown;
  uuid4(...args: never[]): string;
}

/** The wrapper a page gets (window.SoftphoneWrapper, or the name in data-global). */
export interface SoftphoneGlobal extends SoftphoneWrapper {
  readonly parts: WrapperParts;
}

declare const wrapper: SoftphoneGlobal;
/** softphone.mjs's named export: the same parts as wrapper.parts. */
export declare const parts: WrapperParts;
export default wrapper;

declare global {
  // eslint-disable-next-line no-var
  var SoftphoneWrapper: SoftphoneGlobal;
}
