//! `warden test FILE|DIR…`: policy tests, run as `warden serve` runs the
//! policy — compiled and decided in the guest, under the same limits.
//!
//! The test language is the engine's ([`warden_engine::policy_tests`]);
//! here each file's policy is loaded, a `token CONSUMER` is minted by asking
//! the policy's own token endpoint (client credentials, with the secret the
//! policy text gives, or reads from `env`/`file`), the clock is set for each
//! request, and every test's decision is compared with its expectation. The
//! report names each test, `ok` or `FAIL` with one line per difference
//! (expected, got); the exit status is 1 when any test fails or a file does
//! not load.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use warden_engine::Decision;
use warden_engine::policy_tests::{self, Credential, SecretText, TestCase, TestFile, TokenSpec};
use warden_host::services::resolve_secret;
use warden_host::{
    Clock, ManualClock, OwnedRequest, PolicyRuntime, RuntimeOptions, SharedKeys, load_keys,
};

use super::{GuestComponent, HostError, load, read_policy};

/// `warden test`: every `*.test` file named or in a named directory.
pub(crate) fn run(paths: &[PathBuf]) -> ExitCode {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "test"))
                .collect();
            found.sort();
            if found.is_empty() {
                eprintln!("error: {}: no *.test files", path.display());
                return ExitCode::FAILURE;
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut broken = false;
    for file in &files {
        match run_file(file) {
            Ok((p, f)) => (passed, failed) = (passed + p, failed + f),
            Err(e) => {
                eprintln!("error: {e}");
                broken = true;
            }
        }
    }
    println!(
        "{} tests, {passed} passed, {failed} failed{}",
        passed + failed,
        if broken { "; a file did not load" } else { "" }
    );
    if failed == 0 && !broken {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One test file: (passed, failed).
fn run_file(file: &Path) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let name = file.display().to_string();
    let text = read_policy(file)?;
    let tests = policy_tests::parse(&text).map_err(|d| d.render(&name, &text))?;
    let policy_path = policy_of(file, &tests);
    let source = read_policy(&policy_path)?;
    let credentials = policy_tests::credentials(&source)
        .map_err(|d| d.render(&policy_path.display().to_string(), &source))?;
    let clock = ManualClock::default();
    let mut options = RuntimeOptions {
        clock: Clock::Manual(clock.clone()),
        ..RuntimeOptions::from_env()?
    };
    let algs = policy_tests::signing_algs(&source)
        .map_err(|d| d.render(&policy_path.display().to_string(), &source))?;
    if algs.iter().any(|a| a != "HS256") {
        options.keys = ephemeral_keys(&algs)?;
    }
    let runtime = load(
        GuestComponent::shared()?,
        &policy_path.display().to_string(),
        &source,
        options,
    )?;
    println!("{name} ({})", policy_path.display());
    let (mut passed, mut failed) = (0, 0);
    for case in &tests.tests {
        let now = case.request.now.or(tests.now).unwrap_or_else(system_now);
        let outcome = run_case(&runtime, &clock, &credentials, case, now);
        match outcome {
            Ok(diffs) if diffs.is_empty() => {
                passed += 1;
                println!("  ok    {}", case.name);
            }
            Ok(diffs) => {
                failed += 1;
                println!("  FAIL  {} ({name}:{})", case.name, case.line);
                for d in diffs {
                    println!("        {d}");
                }
            }
            Err(why) => {
                failed += 1;
                println!("  FAIL  {} ({name}:{})", case.name, case.line);
                println!("        {why}");
            }
        }
    }
    Ok((passed, failed))
}

/// Host keys for a policy's asymmetric scopes, made for this run only (in
/// a temporary directory, removed at once): tokens minted and verified as
/// with `warden serve --keys`.
fn ephemeral_keys(algs: &[String]) -> Result<SharedKeys, HostError> {
    let dir = std::env::temp_dir().join(format!("warden-test-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let made = (|| {
        for alg in algs {
            if let Some(alg) = warden_engine::Alg::parse(alg)
                .filter(|a| warden_engine::Alg::HOST_SIGNING.contains(a))
            {
                warden_host::generate_key(alg, &dir, system_now())?;
            }
        }
        load_keys(&dir)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(SharedKeys::new(made?))
}

/// `policy FILE` beside the test file, or the test file's stem `.policy`.
fn policy_of(file: &Path, tests: &TestFile) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("."));
    match &tests.policy {
        Some(p) => dir.join(p),
        None => file.with_extension("policy"),
    }
}

fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One test: the differences from its expectation, or why it could not run.
fn run_case(
    runtime: &PolicyRuntime,
    clock: &ManualClock,
    credentials: &[Credential],
    case: &TestCase,
    now: u64,
) -> Result<Vec<String>, String> {
    let mut r = case.request.clone();
    r.url = expand_env(&r.url)?;
    r.body = r.body.as_deref().map(expand_env).transpose()?;
    for (_, v) in &mut r.headers {
        *v = expand_env(v)?;
    }
    let r = &r;
    let mut headers = r.headers.clone();
    let mut expect = case.expect.clone();
    let mut minted = None;
    if let Some(spec) = &r.token {
        clock.set(spec.at.unwrap_or(now));
        let token = mint(runtime, credentials, spec, &r.url)?;
        for (_, v) in &mut expect.headers {
            *v = v.replace("{token}", &token);
        }
        let mut placed = false;
        for (_, v) in &mut headers {
            if v.contains("{token}") {
                *v = v.replace("{token}", &token);
                placed = true;
            }
        }
        if !placed {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        minted = Some(token);
    }
    clock.set(now);
    let req =
        request_of(&r.method, &r.url, &headers, r.body.as_deref()).map_err(|e| e.to_string())?;
    let decision = runtime
        .decide(&req)
        .map_err(|e| format!("the guest failed: {e}"))?;
    if matches!(decision, Decision::RefreshKeys { .. } | Decision::Fetch(_)) {
        return Err("the decision needs an outbound call (JWK Set, introspection), which `warden test` does not make".into());
    }
    let mut diffs = expect.mismatches(&decision, &req_headers(&req));
    // The minted token, where a difference quotes it, as the test wrote it.
    if let Some(token) = minted {
        for d in &mut diffs {
            *d = d.replace(&token, "{token}");
        }
    }
    Ok(diffs)
}

fn req_headers(req: &OwnedRequest) -> Vec<(String, String)> {
    req.header_pairs()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A token for `spec.consumer`, from the policy's own token endpoint.
fn mint(
    runtime: &PolicyRuntime,
    credentials: &[Credential],
    spec: &TokenSpec,
    request_url: &str,
) -> Result<String, String> {
    let c = credentials
        .iter()
        .find(|c| c.consumer == spec.consumer)
        .ok_or_else(|| {
            format!(
                "`token {}`: the policy has no consumer of that name with a client_id",
                spec.consumer
            )
        })?;
    let secret = match &c.secret {
        SecretText::Plain(s) => s.clone(),
        SecretText::Env(n) => secret_text(&format!("env:{n}"))?,
        SecretText::File(p) => secret_text(&format!("file:{p}"))?,
        SecretText::Hashed => {
            return Err(format!(
                "`token {}`: its secret is stored as a hash, which cannot be presented",
                spec.consumer
            ));
        }
        SecretText::None => {
            return Err(format!(
                "`token {}`: it has no client_secret",
                spec.consumer
            ));
        }
    };
    let url = match &spec.url {
        Some(u) => u.clone(),
        None => {
            let path = runtime
                .token_paths()
                .first()
                .cloned()
                .unwrap_or_else(|| "/oauth2/token".into());
            let base = request_url
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .trim_end_matches('/');
            format!("{base}{path}")
        }
    };
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        enc(&c.client_id),
        enc(&secret)
    );
    if let Some(scope) = &spec.scope {
        body.push_str(&format!("&scope={}", enc(scope)));
    }
    let headers = [(
        "Content-Type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    let req = request_of("POST", &url, &headers, Some(&body)).map_err(|e| e.to_string())?;
    match runtime.decide(&req) {
        Ok(Decision::Reply(r)) if r.status == 200 => {
            let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            json["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!(
                        "`token {}`: the token endpoint {url} answered without an access_token",
                        spec.consumer
                    )
                })
        }
        Ok(Decision::Reply(r)) => Err(format!(
            "`token {}`: the token endpoint {url} answered {} ({}): {}",
            spec.consumer,
            r.status,
            r.reason,
            String::from_utf8_lossy(&r.body)
        )),
        Ok(_) => Err(format!(
            "`token {}`: {url} is not a token endpoint of the policy (give `url` in the token block)",
            spec.consumer
        )),
        Err(e) => Err(format!("the guest failed: {e}")),
    }
}

/// `text` with every `{env:NAME}` replaced by that environment variable
/// (a provision key the policy reads from the environment, say).
fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{env:") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 5..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{{env:` without its `}}` in {text:?}"))?;
        let name = &after[..end];
        let value = std::env::var(name)
            .map_err(|_| format!("the test uses {{env:{name}}}, which is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn secret_text(reference: &str) -> Result<String, String> {
    let bytes =
        resolve_secret(reference).ok_or_else(|| format!("cannot read the secret `{reference}`"))?;
    String::from_utf8(bytes).map_err(|_| format!("the secret `{reference}` is not UTF-8"))
}

/// A request as the gateway would hand it to the policy: `url` absolute
/// (`scheme://authority/path?query`) or a target with a `Host` header; the
/// whole body known.
pub(crate) fn request_of(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<OwnedRequest, HostError> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| HostError::Config(format!("invalid URL `{url}`: {e}")))?;
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut req = OwnedRequest::new(method, target);
    if let Some(authority) = uri.authority() {
        req = req.with_authority(authority.as_str());
    }
    if let Some(scheme) = uri.scheme_str() {
        req = req.with_scheme(scheme);
    }
    for (name, value) in headers {
        req = req.with_header(name.trim(), value.trim());
    }
    match req.header("host").map(str::to_owned) {
        // Like the gateway: an origin-form target takes its authority from Host.
        Some(host) if uri.authority().is_none() => req = req.with_authority(&host),
        Some(_) => {}
        None => {
            let authority = req.authority().to_owned();
            req = req.with_header("host", &authority);
        }
    }
    req.body = Some(body.unwrap_or_default().as_bytes().to_vec().into());
    Ok(req)
}
