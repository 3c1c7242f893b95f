// Warden's Node.js host: the guest component (`warden_guest.wasm`, world
// `warden:policy/guest@0.8.0`), transpiled by `jco transpile --instantiation
// async`, instantiated with JS implementations of the three host interfaces
// (`services`, `store`, `keys`) and a WASI preview 2 environment from
// @bytecodealliance/preview2-shim that grants nothing.
//
//   import { loadGuest } from "./host.mjs";
//   const guest = await loadGuest("./build");          // the jco output directory
//   const policy = await guest.compile("demo.policy", text);
//   const { decision, rule, token } = policy.decide({ method: "GET", path: "/a", headers: [["authorization", "Bearer …"]] });
//
// Requests cross the boundary packed into one buffer and forwards and
// replies come back packed (`packRequest`, `unpackForward`, `unpackReply`:
// the same forms as `warden_engine::packed`); `CompiledPolicy` does both, so
// callers see plain objects.
//
// See README.md ("Embedding Warden") for what each import must do.

import { createPublicKey, pbkdf2Sync, randomFillSync, timingSafeEqual } from "node:crypto";
import * as nodeCrypto from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { WASIShim } from "@bytecodealliance/preview2-shim/instantiation";

import { packRequest, unpackForward, unpackReply } from "./packed.mjs";

export { packRequest, unpackForward, unpackReply };

/** The most random bytes one `random-bytes` call may ask for (as the wasmtime host). */
const MAX_RANDOM_BYTES = 64 * 1024;
/** Store bounds (as the wasmtime host): longer keys or values are refused. */
const MAX_STORE_KEY = 256;
const MAX_STORE_VALUE = 16 * 1024;

/** A guest call trapped: the instance must not be used again. */
export class GuestTrap extends Error {}

/** A WIT `decided` with its forward or reply unpacked. */
function unpackDecided(decided) {
  const d = decided.decision;
  if (d.tag === "forward") return { ...decided, decision: { tag: "forward", val: unpackForward(d.val) } };
  if (d.tag === "reply") return { ...decided, decision: { tag: "reply", val: unpackReply(d.val) } };
  return decided;
}

// ---------------------------------------------------------------------------
// warden:policy/services

/**
 * @typedef {object} HostOptions
 * @property {() => number | bigint} [now] Unix seconds (default: the system clock).
 * @property {(reference: string) => Uint8Array | undefined} [secret] `env:NAME` /
 *   `file:PATH` references the policy makes; default: none is granted.
 * @property {MemoryStore} [store] shared state (default: a fresh in-memory store).
 * @property {(message: string) => void} [onPanic] where a guest panic message goes.
 */

function servicesImport(opts, state) {
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  return {
    now: () => BigInt(now()),
    randomBytes(len) {
      if (len > MAX_RANDOM_BYTES) {
        throw new GuestTrap(`guest asked for ${len} random bytes (at most ${MAX_RANDOM_BYTES})`);
      }
      return randomFillSync(new Uint8Array(len));
    },
    secret: (reference) => opts.secret?.(reference) ?? undefined,
    verifySecretHash: (phc, presented) => verifySecretHash(phc, presented),
    hmacSha256: (key, message) => hmacSha256(key, message),
    guestPanicked(message) {
      state.panic = message;
      (opts.onPanic ?? ((m) => console.error(`warden guest panicked: ${m}`)))(message);
    },
  };
}

/**
 * HMAC-SHA256 of `message` under `key`, as WIT's four big-endian u64s.
 * @param {Uint8Array} key
 * @param {Uint8Array} message
 */
export function hmacSha256(key, message) {
  const mac = nodeCrypto.createHmac("sha256", key).update(message).digest();
  return [0, 8, 16, 24].map((at) => mac.readBigUInt64BE(at));
}

/** PHC strings use standard base64 without padding. */
function phcB64(text) {
  return Buffer.from(text, "base64");
}

/**
 * Whether `presented` is the secret hashed as `phc` (already checked by the
 * guest for format and cost). PBKDF2-SHA256/-SHA512 always; argon2 where
 * Node has it (`crypto.argon2Sync`, Node >= 24.7); anything else is `false`.
 */
export function verifySecretHash(phc, presented) {
  try {
    const [, alg, ...rest] = phc.split("$");
    if (alg === "pbkdf2-sha256" || alg === "pbkdf2-sha512") {
      const [params, salt, hash] = rest;
      const i = Number(/(?:^|,)i=(\d+)/.exec(params)?.[1]);
      const expected = phcB64(hash);
      const got = pbkdf2Sync(presented, phcB64(salt), i, expected.length, alg.slice(7));
      return got.length === expected.length && timingSafeEqual(got, expected);
    }
    if (alg.startsWith("argon2") && typeof nodeCrypto.argon2Sync === "function") {
      // $argon2id$v=19$m=…,t=…,p=…$salt$hash
      const [version, params, salt, hash] = rest[0].startsWith("v=") ? rest : ["v=16", ...rest];
      if (version !== "v=19") return false;
      const p = Object.fromEntries(params.split(",").map((kv) => kv.split("=")));
      const expected = phcB64(hash);
      const got = nodeCrypto.argon2Sync(alg, {
        message: presented,
        nonce: phcB64(salt),
        memory: Number(p.m),
        passes: Number(p.t),
        parallelism: Number(p.p),
        tagLength: expected.length,
      });
      return timingSafeEqual(Buffer.from(got), expected);
    }
  } catch {
    // a hash the host cannot check is not a match
  }
  return false;
}

// ---------------------------------------------------------------------------
// warden:policy/store

/** The `store` interface in process memory: values with an expiry, revocations. */
export class MemoryStore {
  #entries = new Map(); // key -> { value: Uint8Array, expires: number | undefined }
  #revoked = new Map(); // token id -> until (Unix seconds)

  /** @param {() => number} now Unix seconds (the host's clock). */
  import(now) {
    const unavailable = (why) => ({ tag: "unavailable", val: why });
    const live = (e) => e !== undefined && (e.expires === undefined || now() < e.expires);
    return {
      put: (key, value, ttlSeconds) => {
        if (key.length > MAX_STORE_KEY || value.length > MAX_STORE_VALUE) {
          // result<_, store-error>: jco lowers a thrown value as the `err` case.
          throw unavailable("refused: key or value too large");
        }
        const ttl = Number(ttlSeconds);
        this.#entries.set(key, { value: Uint8Array.from(value), expires: ttl > 0 ? now() + ttl : undefined });
      },
      get: (key) => {
        const e = this.#entries.get(key);
        return live(e) ? e.value : undefined;
      },
      take: (key) => {
        const e = this.#entries.get(key);
        this.#entries.delete(key);
        return live(e) ? e.value : undefined;
      },
      delete: (key) => {
        this.#entries.delete(key);
      },
      revoke: (tokenId, until) => {
        if (tokenId.length > MAX_STORE_KEY) throw unavailable("refused: token id too long");
        this.#revoked.set(tokenId, Number(until));
      },
      isRevoked: (tokenId) => {
        const until = this.#revoked.get(tokenId);
        return until !== undefined && now() <= until;
      },
    };
  }
}

// ---------------------------------------------------------------------------
// warden:policy/keys

const JWS = {
  RS256: { kty: "RSA", hash: "sha256" },
  RS384: { kty: "RSA", hash: "sha384" },
  RS512: { kty: "RSA", hash: "sha512" },
  PS256: { kty: "RSA", hash: "sha256", pss: true },
  ES256: { kty: "EC", hash: "sha256" },
  ES384: { kty: "EC", hash: "sha384" },
  EdDSA: { kty: "OKP", hash: null },
};

/**
 * Check a JWS signature with a public JWK (an external issuer's inline key):
 * `unknown-key` when the JWK does not parse or does not fit `alg`, else
 * `valid` or `invalid`.
 */
export function verifyJwk(jwkText, alg, message, signature) {
  const spec = JWS[alg];
  let jwk;
  try {
    jwk = JSON.parse(jwkText);
  } catch {
    return "unknown-key";
  }
  if (!spec || typeof jwk !== "object" || jwk === null) return "unknown-key";
  if (jwk.alg !== undefined && jwk.alg !== alg) return "unknown-key";
  if (jwk.kty !== spec.kty) return "unknown-key";
  let key;
  try {
    key = createPublicKey({ key: jwk, format: "jwk" });
  } catch {
    return "unknown-key";
  }
  try {
    const sig = Buffer.from(signature, "base64url");
    const options = { key };
    if (spec.kty === "EC") options.dsaEncoding = "ieee-p1363";
    if (spec.pss) {
      options.padding = nodeCrypto.constants.RSA_PKCS1_PSS_PADDING;
      options.saltLength = 32;
    }
    return nodeCrypto.verify(spec.hash, Buffer.from(message), options, sig) ? "valid" : "invalid";
  } catch {
    return "invalid";
  }
}

/**
 * The `keys` interface for a host that holds no signing keys and fetches no
 * JWK Sets: scopes with `signing_alg` cannot issue (the guest answers 500),
 * host and remote keys are unknown, inline JWKs verify.
 */
function keysImport() {
  return {
    signingKey: (_alg) => undefined,
    sign: (_kid, _message) => undefined,
    verify(key, alg, message, signature) {
      return key.tag === "jwk" ? verifyJwk(key.val, alg, message, signature) : "unknown-key";
    },
    publicKeys: () => '{"keys":[]}',
  };
}

// ---------------------------------------------------------------------------
// WASI: linked because a Rust std guest imports wasi:cli & co; nothing granted.

function wasiImports() {
  const shim = new WASIShim({
    sandbox: { preopens: {}, env: {}, args: [], enableNetwork: false },
  }).getImportObject();
  const deny = (what) => () => {
    throw new GuestTrap(`the guest may not use ${what}`);
  };
  return {
    ...shim,
    // No initial directory either.
    "wasi:cli/environment": { ...shim["wasi:cli/environment"], initialCwd: () => undefined },
    // The shim's exit ends the Node process; here it fails the call.
    "wasi:cli/exit": { exit: deny("wasi:cli/exit") },
    // No stdin; the guest's stdout goes to the host's stderr, never mixing
    // with what the host prints (the guest writes to neither: it reports
    // panics through `services.guest-panicked`).
    "wasi:cli/stdin": { getStdin: deny("stdin") },
    "wasi:cli/stdout": { getStdout: () => shim["wasi:cli/stderr"].getStderr() },
  };
}

// ---------------------------------------------------------------------------
// The guest

/**
 * Load a transpiled guest: `dir` is `jco transpile --instantiation async
 * --name warden` output. Core modules are compiled once and shared by every
 * instance.
 */
export async function loadGuest(dir) {
  const { instantiate } = await import(pathToFileURL(join(dir, "warden.js")).href);
  const modules = new Map();
  const getCoreModule = (name) => {
    if (!modules.has(name)) {
      modules.set(name, readFile(join(dir, name)).then((bytes) => WebAssembly.compile(bytes)));
    }
    return modules.get(name);
  };

  return {
    /**
     * A fresh guest instance with `opts`' services, and `source` compiled in
     * it: `{ policy }`, or `{ diagnostics }` when it does not compile.
     * @param {string} name used in diagnostics only
     * @param {string} source policy text
     * @param {HostOptions} [opts]
     */
    async compile(name, source, opts = {}) {
      const state = { panic: undefined };
      const store = opts.store ?? new MemoryStore();
      const clock = opts.now ?? (() => Math.floor(Date.now() / 1000));
      const imports = {
        ...wasiImports(),
        "warden:policy/services": servicesImport({ ...opts, now: clock }, state),
        "warden:policy/store": store.import(() => Number(clock())),
        "warden:policy/keys": keysImport(),
        "warden:policy/types": {},
      };
      const root = await instantiate(getCoreModule, imports);
      const { Policy } = root.decisions;
      let handle;
      try {
        handle = Policy.compile(name, source);
      } catch (e) {
        // result<policy, list<diagnostic>>: jco throws the err case as a
        // ComponentError carrying it; anything else is a trap.
        if (e && Object.hasOwn(e, "payload")) return { diagnostics: e.payload };
        throw trapped(e, state);
      }
      return { policy: new CompiledPolicy(handle, state) };
    },
  };
}

function trapped(e, state) {
  const why = state.panic ?? (e instanceof Error ? e.message : String(e));
  return new GuestTrap(`guest call failed: ${why}`, { cause: e });
}

/** A compiled policy in its own guest instance. Not for concurrent use. */
export class CompiledPolicy {
  #handle;
  #state;
  #broken = false;

  constructor(handle, state) {
    this.#handle = handle;
    this.#state = state;
  }

  #call(f) {
    if (this.#broken) throw new GuestTrap("this guest instance trapped earlier; compile the policy again");
    try {
      return f(this.#handle);
    } catch (e) {
      // The instance may be mid-way through anything: never reuse it.
      this.#broken = true;
      throw trapped(e, this.#state);
    }
  }

  /**
   * One decision: a request in (see `packRequest`), WIT `decided` out as
   * jco maps it, with a forward or reply unpacked into its record's shape:
   * `{ decision, rule, token }` — the decision, the index in `rules()` of
   * the rule the request entered (undefined: none), how its token was
   * checked (`"none"`, `"remembered"`, `"verified"`, …). A forward or reply
   * that does not read is an Error (fail closed).
   */
  decide(request) {
    return unpackDecided(this.#call((p) => p.decide(packRequest(request))));
  }

  /** The rules' names, in declaration order (`decided.rule` indexes them). */
  rules() {
    return this.#call((p) => p.rules());
  }

  explain(request) {
    return this.#call((p) => p.explain(packRequest(request)));
  }

  warnings() {
    return this.#call((p) => p.warnings());
  }

  routes() {
    return this.#call((p) => p.routes());
  }

  tokenPaths() {
    return this.#call((p) => p.tokenPaths());
  }

  jwksUrls() {
    return this.#call((p) => p.jwksUrls());
  }

  fetchEndpoints() {
    return this.#call((p) => p.fetchEndpoints());
  }

  /**
   * Follow the protocol to a final decision: `need-body` → read the body and
   * decide again; `refresh-keys` → fetch the JWK Set again and decide again
   * with `keysRefreshed`; `fetch` → make the call and decide again with
   * `fetched`. Each step is asked of `host` (omit one to stop at that
   * decision); every `decided` met is returned, the final one last.
   * @param {object} request
   * @param {{ readBody?: (max: number) => Promise<Uint8Array> | Uint8Array,
   *           refreshKeys?: (url: string) => Promise<void> | void,
   *           fetch?: (outbound: object) => Promise<object> | object }} host
   */
  async decideAll(request, host = {}) {
    const seen = [];
    let req = request;
    for (;;) {
      const decided = this.decide(req);
      const d = decided.decision;
      seen.push(decided);
      if (seen.length > 4) return seen; // a well-behaved guest asks for each at most once
      if (d.tag === "need-body" && host.readBody && req.body === undefined) {
        req = { ...req, body: await host.readBody(d.val) };
      } else if (d.tag === "refresh-keys" && host.refreshKeys && !req.keysRefreshed) {
        await host.refreshKeys(d.val);
        req = { ...req, keysRefreshed: true };
      } else if (d.tag === "fetch" && host.fetch && req.fetched === undefined) {
        req = { ...req, fetched: await host.fetch(d.val) };
      } else {
        return seen;
      }
    }
  }

  /** Free the policy in the guest. */
  dispose() {
    const dispose = this.#handle[Symbol.dispose] ?? this.#handle[Symbol.for("dispose")];
    dispose?.call(this.#handle);
  }
}
