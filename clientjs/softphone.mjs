// ES module entry: `import SoftphoneWrapper from ".../softphone.mjs"`. It loads softphone.js
// (which defines globalThis.SoftphoneWrapper) and re-exports the wrapper and its parts.
import "./softphone.js";

const wrapper = globalThis.SoftphoneWrapper;
export const parts = wrapper.parts;
export default wrapper;
