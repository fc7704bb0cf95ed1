// A tiny remote control for headless Chromium (Debian's, driven by playwright-core), for the
// Python end-to-end tests: one JSON request a line on stdin, one JSON answer a line on stdout.
//   {"id": 1, "op": "open", "url": "..."}            -> {"id": 1, "ok": true, "value": PAGE}
//   {"id": 2, "op": "eval", "page": PAGE, "js": "…"} -> the expression's JSON value
//   ops: open, eval, wait (js until truthy), reload, screenshot, close, quit
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // Softphone-like and Salesforce-like host names, served by the tests on loopback.
    "--host-resolver-rules=MAP *.example.test 127.0.0.1, MAP *.force.com 127.0.0.1",
  ],
});
// The tests' HTTPS servers use throwaway certificates.
const context = await browser.newContext({ ignoreHTTPSErrors: true });
const pages = [];
const consoleLines = [];

async function run(request) {
  const page = pages[request.page];
  switch (request.op) {
    case "open": {
      const opened = await context.newPage();
      opened.on("console", (m) => consoleLines.push(`[${pages.length}] ${m.type()}: ${m.text()}`));
      await opened.goto(request.url);
      pages.push(opened);
      return pages.length - 1;
    }
    case "eval":
      return await page.evaluate(request.js);
    case "wait":
      await page.waitForFunction(request.js, null, { timeout: request.timeout || 10000, polling: 50 });
      return await page.evaluate(request.js);
    case "reload":
      await page.reload();
      return null;
    case "screenshot":
      await page.screenshot({ path: request.path, fullPage: true });
      return request.path;
    case "close":
      await page.close();
      return null;
    case "console":
      return consoleLines.slice();
    case "quit":
      await browser.close();
      process.exit(0);
    default:
      throw new Error(`unknown op ${request.op}`);
  }
}

process.stdout.write(JSON.stringify({ ready: true, version: browser.version() }) + "\n");
for await (const line of createInterface({ input: process.stdin })) {
  const request = JSON.parse(line);
  try {
    const value = await run(request);
    process.stdout.write(JSON.stringify({ id: request.id, ok: true, value: value ?? null }) + "\n");
  } catch (error) {
    process.stdout.write(JSON.stringify({ id: request.id, ok: false, error: String(error) }) + "\n");
  }
}
await browser.close();
