// Every Apex file of the Salesforce kit parses with @apexdevtools/apex-parser (an ANTLR grammar
// that follows the platform compiler), declares nothing under a name the compiler reserves
// (the grammar accepts `String number`, the compiler does not), and the token class has what
// runApex and the relay need. Whether it compiles and signs is only known in an org: see
// salesforce-kit/README.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as apex from "@apexdevtools/apex-parser";

const { ApexErrorListener, ApexParserFactory } = apex;
const RESERVED = new Set(
  JSON.parse(readFileSync(new URL("data/apex-reserved-keywords.json", import.meta.url), "utf8"))
    .keywords
);
/** Parse-tree nodes that declare a name (a method's own name may be a reserved word). */
const DECLARING = [
  "CatchClauseContext",
  "ClassDeclarationContext",
  "EnhancedForControlContext",
  "EnumConstantsContext",
  "EnumDeclarationContext",
  "FormalParameterContext",
  "InterfaceDeclarationContext",
  "PropertyDeclarationContext",
  "VariableDeclaratorContext",
].map((name) => apex[name]);

const CLASSES = fileURLToPath(
  new URL("../../salesforce-kit/force-app/main/default/classes/", import.meta.url)
);
/** The Salesforce Voice part of the kit (its own package directory, for Voice orgs). */
const VOICE_CLASSES = fileURLToPath(
  new URL("../../salesforce-kit/voice/main/default/classes/", import.meta.url)
);

class Collect extends ApexErrorListener {
  constructor() {
    super();
    this.errors = [];
  }
  apexSyntaxError(line, column, message) {
    this.errors.push(`${line}:${column} ${message}`);
  }
}

function syntaxErrors(source) {
  const listener = new Collect();
  const { parser } = ApexParserFactory.createLexerAndParser(source, listener);
  parser.compilationUnit();
  return listener.errors;
}

/** Every name ``source`` declares that Apex reserves, as "line:column name". */
function reservedNames(source) {
  const { parser } = ApexParserFactory.createLexerAndParser(source, new Collect());
  const found = [];
  const visit = (node) => {
    if (DECLARING.some((kind) => node instanceof kind)) {
      const ids = [node.id()].flat().filter(Boolean);
      for (const id of ids) {
        if (RESERVED.has(id.getText().toLowerCase())) {
          found.push(`${id.start.line}:${id.start.column} ${id.getText()}`);
        }
      }
    }
    for (const child of node.children ?? []) visit(child);
  };
  visit(parser.compilationUnit());
  return found;
}

const classesIn = (directory) =>
  readdirSync(directory).filter((name) => name.endsWith(".cls")).map((name) => [directory, name]);
const files = [...classesIn(CLASSES), ...classesIn(VOICE_CLASSES)];

test("the kit has the token, dial and connector classes and their test classes", () => {
  assert.deepEqual(files.map(([, name]) => name).sort(), [
    "SoftphoneRelayConnectorToken.cls",
    "SoftphoneRelayConnectorTokenTest.cls",
    "SoftphoneRelayDial.cls",
    "SoftphoneRelayDialTest.cls",
    "SoftphoneRelayToken.cls",
    "SoftphoneRelayTokenTest.cls",
  ]);
});

for (const [directory, name] of files) {
  test(`${name} parses as Apex`, () => {
    assert.deepEqual(syntaxErrors(readFileSync(join(directory, name), "utf8")), []);
  });
  test(`${name} declares no name Apex reserves`, () => {
    assert.deepEqual(reservedNames(readFileSync(join(directory, name), "utf8")), []);
  });
  test(`${name} has its metadata file`, () => {
    const meta = readFileSync(join(directory, `${name}-meta.xml`), "utf8");
    assert.match(meta, /<apiVersion>\d+\.0<\/apiVersion>/);
  });
}

test("the parser catches a broken class (the check can fail)", () => {
  assert.notDeepEqual(syntaxErrors("global class Broken { webService static String mint( { }"), []);
});

test("a name Apex reserves is caught where the grammar accepts it (the check can fail)", () => {
  const source = "@IsTest class T { static void request(String number) { Integer loop = 1; } }";
  assert.deepEqual(syntaxErrors(source), []);
  assert.deepEqual(reservedNames(source), ["1:45 number", "1:63 loop"]);
});

test("the token method is what runApex can call: webService static in a global class", () => {
  const source = readFileSync(join(CLASSES, "SoftphoneRelayToken.cls"), "utf8");
  assert.match(source, /global\s+with sharing\s+class\s+SoftphoneRelayToken/);
  assert.match(source, /webService\s+static\s+String\s+mint\(\)/);
  for (const claim of ["setSub", "setAud", "setValidityLength", "'partnerId'", "'sfUserId'"]) {
    assert.ok(source.includes(claim), `the token sets ${claim}`);
  }
  assert.match(source, /new Auth\.JWS\(jwt, settings\.Certificate_Name__c\)/);
});

test("the dial action is an invocable callout to the control API for the running user", () => {
  const source = readFileSync(join(CLASSES, "SoftphoneRelayDial.cls"), "utf8");
  assert.match(source, /@InvocableMethod\(\s*label='Dial on my softphone'[\s\S]*?callout=true\s*\)/);
  assert.ok(source.includes("'callout:Softphone_Relay/v1/agents/' + UserInfo.getUserId() + '/calls'"));
  assert.match(source, /getStatusCode\(\) != 202/);
});

test("the connector's token is a remote action of the page's controller, minting as the user", () => {
  const source = readFileSync(join(VOICE_CLASSES, "SoftphoneRelayConnectorToken.cls"), "utf8");
  assert.match(source, /global\s+with sharing\s+class\s+SoftphoneRelayConnectorToken/);
  assert.match(source, /@RemoteAction\s+global\s+static\s+String\s+mint\(\)\s*\{\s*return SoftphoneRelayToken\.mint\(\);/);
});
