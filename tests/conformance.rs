//! The conformance suite (`conformance/*.json`: a policy, a fixed `now`,
//! requests in, decisions out) through both hosts of the guest component:
//! the wasmtime host ([`PolicyRuntime`], as `warden serve` runs it) and the
//! Node.js host in `hosts/node` (the same component, transpiled by jco,
//! with JS imports and no WASI capability). Every case must give its
//! expected decisions on both, and the two hosts' results must be the same
//! bytes (canonical JSON, after the suite's one normalisation: issued
//! tokens' random `jti`, see `conformance/README.md`).
//!
//! The Node side installs `hosts/node`'s locked packages with `npm ci` into
//! `target/tmp/conformance-node` (again only when the lockfile or the Node
//! version changed), writes [`GUEST_WASM`] there, transpiles it with jco
//! and runs `run-conformance.mjs` over the case directory. A missing `node`
//! or `npm`, or a failed install, fails the test with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use warden_host::{
    Clock, Decision, Diagnostic, FetchOutcome, GUEST_WASM, GuestComponent, LoadError, Notes,
    OwnedRequest, PolicyRuntime, RuntimeOptions, Severity, Upstream,
};

/// The suite must keep at least this many cases.
const MIN_CASES: usize = 12;
/// A well-behaved guest asks for the body, a key refresh or a fetch at most
/// once per request: stop following the protocol after this many decisions.
const MAX_STEPS: usize = 4;
/// The JWT fields of a token reply that the normalisation replaces.
const TOKEN_FIELDS: &[&str] = &["access_token"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cases_dir() -> PathBuf {
    repo().join("conformance")
}

struct Case {
    /// The file name, e.g. `01-demo-consumer1-route-a.json`.
    file: String,
    path: PathBuf,
    value: Value,
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            Case { file, path, value }
        })
        .collect();
    cases.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(
        cases.len() >= MIN_CASES,
        "conformance/ holds {} cases, at least {MIN_CASES} expected",
        cases.len()
    );
    cases
}

// ---------------------------------------------------------------------------
// The suite's rules (hosts/node/conformance.mjs implements the same)

/// JSON with object keys sorted, no whitespace.
fn canonical(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// Case bytes: a string (UTF-8) or `{"base64": "…"}`.
fn case_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Object(o) if o.get("base64").is_some_and(Value::is_string) => {
            Some(STANDARD.decode(o["base64"].as_str().unwrap()).unwrap())
        }
        other => panic!("bytes must be a string or {{\"base64\": …}}, not {other}"),
    }
}

/// Decision bytes: a string when they are UTF-8, else `{"base64": "…"}`.
fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => json!({ "base64": STANDARD.encode(bytes) }),
    }
}

fn opt_bytes_json(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Null, bytes_json)
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The policy's name and text: a file relative to the case file, or inline
/// text (one string, or its lines).
fn policy_of(case: &Case) -> (String, String) {
    let policy = &case.value["policy"];
    match (&policy["file"], &policy["text"]) {
        (Value::String(file), _) => {
            let path = case.path.parent().unwrap().join(file);
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {}: {e}", case.file, path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, text)
        }
        (_, text) => {
            let text = match text {
                Value::String(s) => s.clone(),
                Value::Array(lines) => {
                    let lines: Vec<&str> = lines.iter().map(|l| l.as_str().unwrap()).collect();
                    format!("{}\n", lines.join("\n"))
                }
                _ => panic!("{}: \"policy\" needs \"file\" or \"text\"", case.file),
            };
            let name = str_field(policy, "name").unwrap_or_else(|| "inline.policy".into());
            (name, text)
        }
    }
}

/// A case's `request` as the host's request context.
fn owned_request(r: &Value) -> OwnedRequest {
    let field = |name| str_field(r, name);
    let mut req = OwnedRequest::new(r["method"].as_str().unwrap_or("GET"), "/")
        .with_scheme(&field("scheme").unwrap_or_else(|| "http".into()))
        .with_authority(&field("authority").unwrap_or_else(|| "localhost".into()))
        .with_path(&field("path").unwrap_or_else(|| "/".into()))
        .with_query(&field("query").unwrap_or_default())
        .with_route(field("route").as_deref())
        .with_service(field("service").as_deref())
        .with_peer(field("peer").as_deref())
        .with_trusted_user(field("trusted_user").as_deref());
    req.proxy_terminated = r["proxy_terminated"].as_bool().unwrap_or(false);
    req.body = case_bytes(r.get("body").unwrap_or(&Value::Null)).map(Into::into);
    let headers = r["headers"].as_array().cloned().unwrap_or_default();
    req.with_headers(headers.iter().map(|pair| {
        let pair = pair.as_array().unwrap();
        (pair[0].as_str().unwrap(), pair[1].as_str().unwrap())
    }))
}

fn fetched(f: &Value) -> FetchOutcome {
    match f.get("failed").and_then(Value::as_str) {
        Some(why) => FetchOutcome::Failed(why.to_owned()),
        None => FetchOutcome::Response {
            status: u16::try_from(f["status"].as_u64().unwrap()).unwrap(),
            body: case_bytes(f.get("body").unwrap_or(&Value::Null))
                .unwrap_or_default()
                .into(),
        },
    }
}

fn pairs_json(pairs: &[(String, String)]) -> Value {
    pairs.iter().map(|(n, v)| json!([n, v])).collect()
}

fn upstream_json(upstream: Option<&Upstream>) -> Value {
    match upstream {
        None => Value::Null,
        Some(Upstream::Echo) => json!("echo"),
        Some(Upstream::Http(h)) => {
            json!({ "http": { "authority": h.authority, "base_path": h.base_path } })
        }
        Some(Upstream::H2c(h)) => {
            json!({ "h2c": { "authority": h.authority, "base_path": h.base_path } })
        }
    }
}

/// A decision and its notes as the suite's JSON (before normalisation):
/// the decision's fields, the name of the rule it entered and how its
/// token was checked (WIT's names).
fn decided_json(d: &Decision, notes: &Notes, runtime: &PolicyRuntime) -> Value {
    let mut v = decision_json(d);
    v["rule"] = json!(runtime.rule_name(notes));
    // WIT's enum names: the metrics' names with `-` for `_`.
    v["token"] = json!(notes.token.as_str().replace('_', "-"));
    v
}

fn decision_json(d: &Decision) -> Value {
    match d {
        Decision::Forward(f) => json!({
            "kind": "forward",
            "set_headers": pairs_json(&f.set_headers),
            "remove_headers": f.remove_headers,
            "consumer": f.consumer,
            "route": f.route,
            "upstream": upstream_json(f.upstream.as_ref()),
            "path": f.path,
            "query": f.query,
            "body": opt_bytes_json(f.body.as_deref()),
        }),
        Decision::Reply(r) => json!({
            "kind": "reply",
            "status": r.status,
            "reason": r.reason,
            "headers": pairs_json(&r.headers),
            "body": bytes_json(&r.body),
        }),
        Decision::NeedBody { max_bytes } => json!({ "kind": "need-body", "max_bytes": max_bytes }),
        Decision::RefreshKeys { url } => json!({ "kind": "refresh-keys", "url": url }),
        Decision::Fetch(o) => json!({
            "kind": "fetch",
            "method": o.method,
            "url": o.url,
            "headers": pairs_json(&o.headers),
            "body": opt_bytes_json(o.body.as_deref()),
        }),
    }
}

fn diagnostic_json(d: &Diagnostic) -> Value {
    json!({
        "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": d.message,
        "help": d.help,
        "start": d.span.start,
        "end": d.span.end,
        "line": d.line,
        "column": d.column,
    })
}

fn b64url_json(segment: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The normalisation: in a reply whose body is a JSON object, each
/// `access_token` that is a JWT is replaced in the body by `<access_token>`
/// and described in `tokens`: header, claims with `jti` replaced by
/// `<random>`, and whether its HS256 signature verifies with `verify_with`.
fn normalise(mut decision: Value, verify_with: Option<&str>) -> Value {
    let Some(text) = decision["body"].as_str().map(str::to_owned) else {
        return decision;
    };
    if decision["kind"] != "reply" {
        return decision;
    }
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&text) else {
        return decision;
    };
    let mut tokens = Map::new();
    let mut normalised = text;
    for field in TOKEN_FIELDS {
        let Some(token) = body.get(*field).and_then(Value::as_str) else {
            continue;
        };
        let parts: Vec<&str> = token.split('.').collect();
        let [h, c, s] = parts[..] else { continue };
        let (Some(header), Some(mut claims)) = (b64url_json(h), b64url_json(c)) else {
            continue;
        };
        if let Some(jti) = claims.get_mut("jti") {
            *jti = json!("<random>");
        }
        let signature = match verify_with {
            None => "unchecked",
            Some(key) => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
                let sig = URL_SAFE_NO_PAD.decode(s).unwrap_or_default();
                match ring::hmac::verify(&key, format!("{h}.{c}").as_bytes(), &sig) {
                    Ok(()) => "valid",
                    Err(_) => "invalid",
                }
            }
        };
        tokens.insert(
            (*field).to_owned(),
            json!({ "header": header, "claims": claims, "signature": signature }),
        );
        normalised = normalised.replace(token, &format!("<{field}>"));
    }
    if !tokens.is_empty() {
        decision["body"] = Value::String(normalised);
        decision["tokens"] = Value::Object(tokens);
    }
    decision
}

// ---------------------------------------------------------------------------
// The wasmtime host

/// One case through [`PolicyRuntime`]: its result in the suite's JSON.
fn run_wasmtime(case: &Case) -> Value {
    let (name, text) = policy_of(case);
    let now = case.value["now"]
        .as_u64()
        .expect("a case has a numeric `now`");
    let options = RuntimeOptions {
        clock: Clock::Fixed(now),
        ..Default::default()
    };
    let runtime =
        match PolicyRuntime::load_with(GuestComponent::shared().unwrap(), &name, &text, options) {
            Ok(runtime) => runtime,
            Err(LoadError::Invalid { diagnostics, .. }) => {
                let diagnostics: Vec<Value> = diagnostics.iter().map(diagnostic_json).collect();
                return json!({ "compiled": false, "diagnostics": diagnostics, "decisions": [] });
            }
            Err(e) => panic!("{}: the wasmtime host failed: {e}", case.file),
        };
    let diagnostics: Vec<Value> = runtime.warnings().iter().map(diagnostic_json).collect();
    let verify_with = case.value["verify_tokens_with"].as_str();
    let requests: Vec<Value> = match (&case.value["requests"], &case.value["request"]) {
        (Value::Array(list), _) => list.clone(),
        (_, Value::Null) => Vec::new(),
        (_, one) => vec![one.clone()],
    };
    let mut decisions = Vec::new();
    for r in &requests {
        // The host's protocol: need-body → read it and decide again;
        // refresh-keys → fetch the set again; fetch → make the call.
        let mut req = owned_request(r);
        let mut seen = Vec::new();
        loop {
            let (d, notes) = runtime
                .decide_noted(&req)
                .unwrap_or_else(|e| panic!("{}: decide failed: {e}", case.file));
            seen.push(normalise(decided_json(&d, &notes, &runtime), verify_with));
            if seen.len() > MAX_STEPS {
                break;
            }
            match d {
                Decision::NeedBody { .. } if req.body.is_none() && r.get("read_body").is_some() => {
                    req.body = case_bytes(&r["read_body"]).map(Into::into);
                }
                Decision::RefreshKeys { .. }
                    if !req.keys_refreshed && r["refresh_keys"].as_bool() == Some(true) =>
                {
                    req.keys_refreshed = true;
                }
                Decision::Fetch(_)
                    if req.fetched.is_none() && r.get("fetch_response").is_some() =>
                {
                    req.fetched = Some(fetched(&r["fetch_response"]));
                }
                _ => break,
            }
        }
        decisions.push(Value::Array(seen));
    }
    json!({ "compiled": true, "diagnostics": diagnostics, "decisions": decisions })
}

/// Every case's canonical result on the wasmtime host, by file name; the
/// cases whose result is not their `expect`.
fn wasmtime_results(cases: &[Case]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut results = BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases {
        let got = canonical(&run_wasmtime(case));
        let want = canonical(&case.value["expect"]);
        if got != want {
            failures.push(format!(
                "{}\n  expected {want}\n  actual   {got}",
                case.file
            ));
        }
        results.insert(case.file.clone(), got);
    }
    (results, failures)
}

#[test]
fn wasmtime_host_passes_every_case() {
    let started = Instant::now();
    let cases = cases();
    let (_, failures) = wasmtime_results(&cases);
    eprintln!(
        "wasmtime host: {} of {} conformance cases pass ({:.1} s)",
        cases.len() - failures.len(),
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "the wasmtime host fails {} case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The Node host

fn tool_version(tool: &str) -> String {
    let out = Command::new(tool).arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "the Node host's conformance run needs `{tool}` on PATH (Debian: apt-get install nodejs npm): {e}"
        )
    });
    assert!(out.status.success(), "`{tool} --version` failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn run(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `hosts/node` set up in `target/tmp/conformance-node`: the locked
/// packages installed (`npm ci`, skipped when a stamp shows this lockfile
/// and Node version installed them), the scripts copied, the embedded guest
/// transpiled into `build/`.
fn node_host() -> PathBuf {
    let node = tool_version("node");
    let npm = tool_version("npm");
    let src = repo().join("hosts/node");
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("conformance-node");
    std::fs::create_dir_all(&work).unwrap();
    let lock = std::fs::read_to_string(src.join("package-lock.json")).unwrap();
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(file), work.join(file)).unwrap();
    }
    let stamp_path = work.join("node_modules/.warden-installed");
    let stamp = format!("node {node}, npm {npm}\n{lock}");
    if std::fs::read_to_string(&stamp_path).ok().as_deref() != Some(stamp.as_str()) {
        let started = Instant::now();
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&work),
            "npm ci (hosts/node's locked packages)",
        );
        std::fs::write(&stamp_path, &stamp).unwrap();
        eprintln!("npm ci: {:.1} s", started.elapsed().as_secs_f64());
    }
    for file in [
        "host.mjs",
        "packed.mjs",
        "conformance.mjs",
        "run-conformance.mjs",
    ] {
        std::fs::copy(src.join(file), work.join(file)).unwrap();
    }
    std::fs::write(work.join("warden_guest.wasm"), GUEST_WASM).unwrap();
    let _ = std::fs::remove_dir_all(work.join("build"));
    let started = Instant::now();
    run(
        Command::new("node")
            .arg("node_modules/@bytecodealliance/jco/dist/jco.js")
            .args(["transpile", "warden_guest.wasm", "-o", "build"])
            .args(["--instantiation", "async", "--name", "warden"])
            .args(["--no-typescript", "--quiet"])
            .current_dir(&work),
        "jco transpile",
    );
    eprintln!("jco transpile: {:.1} s", started.elapsed().as_secs_f64());
    work
}

#[test]
fn node_host_passes_every_case_with_the_wasmtime_hosts_bytes() {
    let cases = cases();
    let (wasmtime, _) = wasmtime_results(&cases);
    let work = node_host();
    let started = Instant::now();
    let out = Command::new("node")
        .arg("run-conformance.mjs")
        .arg(cases_dir())
        .arg("build")
        .current_dir(&work)
        .output()
        .unwrap();
    eprintln!(
        "node run-conformance.mjs: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut node = BTreeMap::new();
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("run-conformance.mjs printed a line that is not JSON ({e}): {line}\n{stderr}")
        });
        node.insert(
            v["case"].as_str().unwrap().to_owned(),
            (
                v["pass"].as_bool().unwrap(),
                v["result"].as_str().unwrap().to_owned(),
            ),
        );
    }
    let mut failures = Vec::new();
    for case in &cases {
        match node.get(&case.file) {
            None => failures.push(format!("{}: the Node host did not run it", case.file)),
            Some((false, got)) => failures.push(format!(
                "{}: the Node host does not give the expected decisions\n  expected {}\n  actual   {got}",
                case.file,
                canonical(&case.value["expect"])
            )),
            Some((true, got)) if *got != wasmtime[&case.file] => failures.push(format!(
                "{}: the two hosts differ\n  wasmtime {}\n  node     {got}",
                case.file, wasmtime[&case.file]
            )),
            Some(_) => {}
        }
    }
    assert!(
        failures.is_empty() && out.status.success(),
        "the Node host fails {} case(s) (exit {}):\n{}\n{stderr}",
        failures.len(),
        out.status,
        failures.join("\n")
    );
    eprint!("{stderr}");
}
