// The one module that knows which @salesforce/scv-connector-base it runs on (package.json pins
// it: 3.6.2, the newest the npm registry serves). The SDK is used as it is (its terms allow
// nothing else); what differs between its major versions is here alone:
// - 3.x: one VendorConnector with the call methods, getCapabilities() -> CapabilitiesResult;
// - 4.x: VendorConnector + getTelephonyConnector(), getSharedCapabilities() and
//   getVoiceCapabilities(), HANGUP_STATUS and friends as enums.
// connector.mjs hands `connectorClass` an object with every method the SDK calls, whatever
// its version, and builds results with this module's re-exported classes (the SDK checks them
// with instanceof: they must come from the same loaded copy).
export {
  ActiveCallsResult,
  AgentConfigResult,
  AgentStatusInfo,
  AgentVendorStatusInfo,
  CallInfo,
  CallResult,
  Constants,
  CustomError,
  GenericResult,
  HangupResult,
  InitResult,
  LogoutResult,
  Phone,
  PhoneCall,
  PhoneCallAttributes,
  PhoneContactsResult,
  initializeConnector,
  publishError,
  publishEvent,
} from "@salesforce/scv-connector-base";
import { CapabilitiesResult, VendorConnector } from "@salesforce/scv-connector-base";

/** The SDK version this adapter speaks. */
export const SDK_MAJOR = 3;

/**
 * The capabilities Salesforce is told at CONNECTOR_READY: every call control off (the softphone
 * owns the call), no recording, no phone book, no supervisor features.
 */
export function capabilities() {
  return new CapabilitiesResult({
    hasMute: false,
    hasRecord: false,
    hasMerge: false,
    hasSwap: false,
    hasSignedRecordingUrl: false,
    debugEnabled: false,
    hasContactSearch: false,
    hasAgentAvailability: false,
    hasQueueWaitTime: false,
    supportsMos: false,
    hasSupervisorListenIn: false,
    hasSupervisorBargeIn: false,
    hasBlindTransfer: false,
    hasTransferToOmniFlow: false,
    hasPendingStatusChange: false,
    hasPhoneBook: false,
  });
}

/**
 * The SDK's connector class around ``impl`` (an object with every method the SDK calls). In
 * 3.x the telephony methods sit on the VendorConnector itself.
 * @param {Record<string, Function>} impl
 * @returns {any}
 */
export function connectorClass(impl) {
  class RelayVendorConnector extends VendorConnector {}
  const proto = /** @type {any} */ (RelayVendorConnector.prototype);
  for (const name of Object.keys(impl)) {
    proto[name] = (/** @type {unknown[]} */ ...args) => impl[name](...args);
  }
  proto.getCapabilities = () => Promise.resolve(capabilities());
  return new RelayVendorConnector();
}
