// The conformance suite's shared rules, for the Node runner: how a case's
// request becomes a WIT request, how a decision becomes JSON, the
// normalisation of issued tokens, and canonical JSON. tests/conformance.rs
// implements the same rules for the wasmtime host; conformance/README.md
// states them.

import { createHmac, timingSafeEqual } from "node:crypto";


const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Case bytes: a string (UTF-8) or `{ "base64": "…" }`. */
export function caseBytes(value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return utf8.encode(value);
  if (typeof value.base64 === "string") return new Uint8Array(Buffer.from(value.base64, "base64"));
  throw new Error(`bytes must be a string or {"base64": …}, not ${JSON.stringify(value)}`);
}

/** Decision bytes: a string when they are UTF-8, else `{ "base64": "…" }`. */
export function bytesJson(bytes) {
  if (bytes === undefined) return null;
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return { base64: Buffer.from(bytes).toString("base64") };
  }
}

/** A case's `request` as the host's request (`packRequest` packs it). */
export function caseRequest(r) {
  return {
    method: r.method ?? "GET",
    scheme: r.scheme ?? "http",
    proxyTerminated: r.proxy_terminated ?? false,
    authority: r.authority ?? "localhost",
    path: r.path ?? "/",
    query: r.query ?? "",
    headers: r.headers ?? [],
    body: caseBytes(r.body),
    route: r.route ?? undefined,
    service: r.service ?? undefined,
    peer: r.peer ?? undefined,
    trustedUser: r.trusted_user ?? undefined,
    keysRefreshed: false,
    fetched: undefined,
  };
}

/** A case's `fetch_response` as the WIT `fetched` variant. */
export function witFetched(f) {
  if (typeof f.failed === "string") return { tag: "failed", val: f.failed };
  return { tag: "response", val: { status: f.status, body: caseBytes(f.body) ?? new Uint8Array() } };
}

function upstreamJson(u) {
  if (u === undefined) return null;
  if (u.tag === "echo") return "echo";
  return { [u.tag]: { authority: u.val.authority, base_path: u.val.basePath } };
}

/**
 * A WIT `decided` as the suite's JSON (before normalisation): the
 * decision's fields, the name of the rule it entered (`rules`: the
 * policy's `rules()`), how its token was checked.
 */
export function decidedJson({ decision, rule, token }, rules) {
  return { ...decisionJson(decision), rule: rule === undefined ? null : rules[rule], token };
}

function decisionJson(d) {
  switch (d.tag) {
    case "forward": {
      const f = d.val;
      return {
        kind: "forward",
        set_headers: f.setHeaders,
        remove_headers: f.removeHeaders,
        consumer: f.consumer ?? null,
        route: f.route ?? null,
        upstream: upstreamJson(f.upstream),
        path: f.path ?? null,
        query: f.query ?? null,
        body: bytesJson(f.body),
      };
    }
    case "reply":
      return {
        kind: "reply",
        status: d.val.status,
        reason: d.val.reason,
        headers: d.val.headers,
        body: bytesJson(d.val.body),
      };
    case "need-body":
      return { kind: "need-body", max_bytes: d.val };
    case "refresh-keys":
      return { kind: "refresh-keys", url: d.val };
    case "fetch":
      return {
        kind: "fetch",
        method: d.val.method,
        url: d.val.url,
        headers: d.val.headers,
        body: bytesJson(d.val.body),
      };
    default:
      throw new Error(`unknown decision ${d.tag}`);
  }
}

export function diagnosticJson(d) {
  return {
    severity: d.severity,
    message: d.message,
    help: d.help ?? null,
    start: d.start,
    end: d.end,
    line: d.line,
    column: d.column,
  };
}

/** The JWT fields of a token reply that the normalisation replaces. */
const TOKEN_FIELDS = ["access_token"];

function b64urlJson(segment) {
  return JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
}

/**
 * Normalise what depends on randomness: in a reply whose body is a JSON
 * object, each `access_token` that is a JWT is replaced in the body by
 * `<access_token>` and described in `tokens.access_token`: its header, its
 * claims with `jti` replaced by `<random>`, and whether its HS256 signature
 * verifies with the case's `verify_tokens_with` key.
 */
export function normalise(decision, verifyWith) {
  if (decision.kind !== "reply" || typeof decision.body !== "string") return decision;
  let body;
  try {
    body = JSON.parse(decision.body);
  } catch {
    return decision;
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) return decision;
  const tokens = {};
  let text = decision.body;
  for (const field of TOKEN_FIELDS) {
    const token = body[field];
    if (typeof token !== "string") continue;
    const parts = token.split(".");
    if (parts.length !== 3) continue;
    let header, claims;
    try {
      header = b64urlJson(parts[0]);
      claims = b64urlJson(parts[1]);
    } catch {
      continue;
    }
    if ("jti" in claims) claims.jti = "<random>";
    let signature = "unchecked";
    if (typeof verifyWith === "string") {
      const mac = createHmac("sha256", verifyWith).update(`${parts[0]}.${parts[1]}`).digest();
      const sig = Buffer.from(parts[2], "base64url");
      signature = sig.length === mac.length && timingSafeEqual(sig, mac) ? "valid" : "invalid";
    }
    tokens[field] = { header, claims, signature };
    text = text.split(token).join(`<${field}>`);
  }
  if (Object.keys(tokens).length === 0) return decision;
  return { ...decision, body: text, tokens };
}

/** JSON with object keys sorted (by UTF-16 code unit: the keys are ASCII), no spaces. */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
