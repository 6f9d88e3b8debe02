// Compile every published event schema with Ajv in strict mode, as an outside
// JavaScript consumer would, and check Ajv's verdicts on a set of cases.
//
//   node tools/js/check-schemas.mjs <schema dir> [cases.json]
//
// <schema dir> holds index.json and one schema per event type (schemas/json/).
// cases.json, when given, is a list of {"type", "event", "valid", "why"}: Ajv
// must accept exactly the events marked valid (the Python test writes it from
// the cases `decode_event` accepts and refuses, so both languages agree).
// Prints one JSON report on stdout; exits 1 when a schema does not compile in
// strict mode or a verdict differs, 2 on bad usage.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [schemaDir, casesFile] = process.argv.slice(2);
if (!schemaDir) {
  process.stderr.write("usage: check-schemas.mjs <schema dir> [cases.json]\n");
  process.exit(2);
}

const readJson = (path) => JSON.parse(readFileSync(path, "utf-8"));
const index = readJson(join(schemaDir, "index.json"));

// strict: true turns every strict check into an error (unknown keywords, union
// types, ignored keywords, required properties that are not defined, ...).
const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);

const report = { compiled: [], errors: [], examples: 0, cases: 0 };
const validators = {};
for (const [type, entry] of Object.entries(index.events)) {
  const schema = readJson(join(schemaDir, entry.schema));
  try {
    validators[type] = ajv.compile(schema);
    report.compiled.push(type);
  } catch (error) {
    report.errors.push({ type, problem: `does not compile: ${error.message}` });
    continue;
  }
  for (const example of schema.examples ?? []) {
    report.examples += 1;
    if (!validators[type](example)) {
      report.errors.push({ type, problem: "its own example is invalid", details: validators[type].errors });
    }
  }
}

for (const item of casesFile ? readJson(casesFile) : []) {
  report.cases += 1;
  const validate = validators[item.type];
  if (!validate) {
    report.errors.push({ type: item.type, problem: `case ${item.why}: no schema` });
    continue;
  }
  if (validate(item.event) !== item.valid) {
    const verdict = item.valid ? "refused" : "accepted";
    report.errors.push({ type: item.type, problem: `case ${item.why}: Ajv ${verdict} it`, details: validate.errors });
  }
}

process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(report.errors.length ? 1 : 0);
