// The wrapper's hook and command names are the contract's: checked against contract.schema.json
// (generated from the relay's Python types), and against the names softphone.d.ts declares.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const parts = require("../softphone.js");

const schema = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "contract.schema.json"), "utf8"));
const declarations = fs.readFileSync(path.join(__dirname, "..", "softphone.d.ts"), "utf8");

/** The string members of `export type NAME = | "a" | "b" ...;` in softphone.d.ts. */
function declaredUnion(name) {
  const match = declarations.match(new RegExp(`export type ${name} =([^;]*);`));
  assert.ok(match, `softphone.d.ts declares no type ${name}`);
  return [...match[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
}

test("the wrapper's hooks are the contract's hooks, in the contract's order", () => {
  assert.deepEqual(parts.HOOKS, schema["x-hooks"]);
});

test("the wrapper hands the softphone exactly the contract's commands", () => {
  assert.deepEqual(parts.COMMANDS, schema["x-commands"]);
});

test("every hook and command the schema names has a payload schema", () => {
  for (const name of [...schema["x-hooks"], ...schema["x-commands"]]) {
    assert.ok(schema.properties[name], `no schema for ${name}`);
  }
});

test("softphone.d.ts declares the contract's hook and command names", () => {
  assert.deepEqual(declaredUnion("HookName"), schema["x-hooks"]);
  assert.deepEqual(declaredUnion("CommandName"), schema["x-commands"]);
});

test("a wrapper has one method per contract hook", () => {
  const wrapper = parts.createWrapper({});
  for (const hook of schema["x-hooks"]) {
    assert.equal(typeof wrapper[hook], "function", hook);
  }
});
