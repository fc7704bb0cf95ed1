// The connector bundle's entry (build.mjs makes ../connector.js of it, the SDK inside): the page
// Salesforce frames calls SoftphoneRelayConnector.start({url, token, namespace}).
export { createConnector, start, DIAL_WAIT_MS, USE_SOFTPHONE_LABEL } from "./connector.mjs";
export { SDK_MAJOR } from "./scv.mjs";
