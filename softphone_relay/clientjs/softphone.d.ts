// Type declarations for softphone.js, the softphone-relay wrapper library (softphone.v1).

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
   *  refresh_refused, open_cti_unavailable */
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

declare const wrapper: SoftphoneWrapper;
export default wrapper;

declare global {
  // eslint-disable-next-line no-var
  var SoftphoneWrapper: SoftphoneWrapper;
}
