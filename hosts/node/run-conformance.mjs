#!/usr/bin/env node
// Run Warden's conformance cases through the Node host.
//
//   node run-conformance.mjs <cases-dir> <transpiled-dir> [--record]
//
// <cases-dir> holds the case files (*.json, see conformance/README.md);
// <transpiled-dir> is `jco transpile --instantiation async --name warden`
// output. For each case it prints one JSON line on stdout:
//   {"case": "<file name>", "pass": true|false, "result": "<canonical JSON>"}
// (tests/conformance.rs compares `result` byte for byte with the wasmtime
// host's), and a summary on stderr. Exit status 0 when every case passes.
// With --record the case files' `expect` is rewritten with what this host
// decided: review the diff before committing it.

import { readdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";

import { loadGuest } from "./host.mjs";
import {
  canonical,
  caseBytes,
  decidedJson,
  diagnosticJson,
  normalise,
  witFetched,
  caseRequest,
} from "./conformance.mjs";

async function policyOf(c, file) {
  const text = c.policy?.text;
  // Inline text: one string, or its lines (joined with "\n", ending with one).
  if (typeof text === "string") return { name: c.policy.name ?? "inline.policy", text };
  if (Array.isArray(text)) return { name: c.policy.name ?? "inline.policy", text: `${text.join("\n")}\n` };
  if (typeof c.policy?.file === "string") {
    const path = resolve(dirname(file), c.policy.file);
    return { name: basename(path), text: await readFile(path, "utf8") };
  }
  throw new Error(`${file}: "policy" needs "file" or "text"`);
}

/** Run one case: its result in the suite's JSON. */
export async function runCase(guest, c, file) {
  const { name, text } = await policyOf(c, file);
  const compiled = await guest.compile(name, text, {
    now: () => c.now,
    // No secret is granted: `env:`/`file:` references are unavailable, as
    // they are to the wasmtime host in the test (none of them is set).
    secret: () => undefined,
  });
  if (compiled.diagnostics) {
    return { compiled: false, diagnostics: compiled.diagnostics.map(diagnosticJson), decisions: [] };
  }
  const { policy } = compiled;
  try {
    const diagnostics = policy.warnings().map(diagnosticJson);
    const rules = policy.rules();
    // One list per request, in order, all on this one instance (and store):
    // the decisions the host met following the protocol.
    const decisions = [];
    for (const r of c.requests ?? (c.request ? [c.request] : [])) {
      const seen = await policy.decideAll(caseRequest(r), {
        readBody: r.read_body === undefined ? undefined : () => caseBytes(r.read_body),
        fetch: r.fetch_response === undefined ? undefined : () => witFetched(r.fetch_response),
        refreshKeys: r.refresh_keys ? () => {} : undefined,
      });
      decisions.push(seen.map((d) => normalise(decidedJson(d, rules), c.verify_tokens_with)));
    }
    return { compiled: true, diagnostics, decisions };
  } finally {
    policy.dispose();
  }
}

/** Case files for people: arrays of scalars on one line when short, the rest indented. */
function pretty(value, indent = "") {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    const scalars = value.every((v) => v === null || typeof v !== "object");
    const flat = `[${value.map((v) => JSON.stringify(v)).join(", ")}]`;
    if (scalars && flat.length <= 100) return flat;
    return `[\n${value.map((v) => inner + pretty(v, inner)).join(",\n")}\n${indent}]`;
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 0) return "{}";
    return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${pretty(value[k], inner)}`).join(",\n")}\n${indent}}`;
  }
  return JSON.stringify(value);
}

async function main() {
  const args = process.argv.slice(2);
  const record = args.includes("--record");
  const [casesDir, transpiled] = args.filter((a) => !a.startsWith("--"));
  if (!casesDir || !transpiled) {
    console.error("usage: node run-conformance.mjs <cases-dir> <transpiled-dir> [--record]");
    process.exit(2);
  }
  const guest = await loadGuest(resolve(transpiled));
  const files = (await readdir(casesDir)).filter((f) => f.endsWith(".json")).sort();
  let failed = 0;
  for (const f of files) {
    const file = join(casesDir, f);
    const c = JSON.parse(await readFile(file, "utf8"));
    let result, pass;
    try {
      result = await runCase(guest, c, file);
      pass = canonical(result) === canonical(c.expect);
    } catch (e) {
      result = { error: String(e?.stack ?? e) };
      pass = false;
    }
    if (!pass) failed++;
    process.stdout.write(`${JSON.stringify({ case: f, pass, result: canonical(result) })}\n`);
    if (!pass && !record) {
      console.error(`FAIL ${f}\n  expected ${canonical(c.expect)}\n  actual   ${canonical(result)}`);
    }
    if (record && !result.error) {
      await writeFile(file, `${pretty({ ...c, expect: result })}\n`);
    }
  }
  console.error(`node host: ${files.length - failed} of ${files.length} conformance cases pass`);
  process.exit(failed === 0 || record ? 0 : 1);
}

await main();
