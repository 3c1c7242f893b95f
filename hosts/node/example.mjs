#!/usr/bin/env node
// The smallest embedding: compile the demo policy, get a token, use it.
//
//   node example.mjs build ../../policies/demo.policy
//
// (`build` is the jco output directory, see README.md.)

import { readFile } from "node:fs/promises";

import { loadGuest } from "./host.mjs";

const [dir = "build", policyFile = "../../policies/demo.policy"] = process.argv.slice(2);
const guest = await loadGuest(dir);
const compiled = await guest.compile("demo.policy", await readFile(policyFile, "utf8"));
if (compiled.diagnostics) {
  for (const d of compiled.diagnostics) console.error(`${policyFile}:${d.line}:${d.column}: ${d.severity}: ${d.message}`);
  process.exit(1);
}
const { policy } = compiled;

/** A GET with `headers` (the host packs it for the guest). */
const get = (authority, target, headers = []) => {
  const [path, query = ""] = target.split("?");
  return {
    method: "GET",
    scheme: "http",
    proxyTerminated: false,
    authority,
    path,
    query,
    headers,
    keysRefreshed: false,
  };
};

const show = (what, { decision: d }) => {
  const v = d.tag === "reply" ? `${d.val.status} ${new TextDecoder().decode(d.val.body)}` : JSON.stringify(d.val);
  console.log(`${what}: ${d.tag} ${v}`);
};

const issued = policy.decide(
  get(
    "gw.test",
    "/oauth2/token?grant_type=client_credentials&client_id=12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx&client_secret=abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
  ),
);
show("token request", issued);
const token = JSON.parse(new TextDecoder().decode(issued.decision.val.body)).access_token;

show("GET /a with the token", policy.decide(get("gw.test", "/a", [["authorization", `Bearer ${token}`]])));
show("GET /a without", policy.decide(get("gw.test", "/a")));
show("GET test.com/ with consumer1's token", policy.decide(get("test.com", "/", [["authorization", `Bearer ${token}`]])));

// A POST to the token endpoint is decided on its head first: need-body.
const [first, second] = await policy.decideAll(
  {
    ...get("test.com", "/oauth2/token", [["content-type", "application/x-www-form-urlencoded"]]),
    method: "POST",
  },
  {
    readBody: () =>
      new TextEncoder().encode(
        "grant_type=client_credentials&client_id=87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx&client_secret=wrong",
      ),
  },
);
show("POST /oauth2/token, head only", first);
show("POST /oauth2/token, with the body", second);
policy.dispose();
