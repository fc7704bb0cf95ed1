// Builds ../connector.js: our connector and the pinned, unmodified @salesforce/scv-connector-base
// in one classic script (global SoftphoneRelayConnector), with the SDK's licence and terms on top.
// Run by `npm run build` (scripts/test.sh, and setup.py when the wheel is built).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, "..", "node_modules", "@salesforce", "scv-connector-base");
const { version } = JSON.parse(readFileSync(join(sdk, "package.json"), "utf8"));
const notice = (name) => readFileSync(join(sdk, name), "utf8").trim().replace(/\*\//g, "* /");
const banner = [
  "/* softphone-relay connector for Salesforce Voice (Apache-2.0).",
  " * Built by clientjs/connector/build.mjs.",
  ` * It bundles @salesforce/scv-connector-base ${version}, unmodified, under these terms:`,
  " *",
  notice("LICENSE.txt"),
  " *",
  notice("TERMSOFUSE.txt"),
  " */",
].join("\n");

const result = await build({
  entryPoints: [join(here, "index.mjs")],
  bundle: true,
  format: "iife",
  globalName: "SoftphoneRelayConnector",
  target: "es2020",
  legalComments: "none",
  write: false,
  logLevel: "warning",
});
const out = join(here, "..", "connector.js");
writeFileSync(out, banner + "\n" + result.outputFiles[0].text);
console.log(`built ${out} (scv-connector-base ${version})`);
