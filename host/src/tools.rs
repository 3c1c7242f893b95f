//! The one-shot commands of `warden`: `check`, `explain`, `graph`, `fmt`,
//! `hash-secret`, `keys generate` and `import kong|higress` (the binary's
//! own module: not part of the `warden-host` library). `serve` and the
//! shared CLI types stay in `main.rs`; `test` is in `testing`.

use super::*;
use warden_host::OwnedRequest;

/// `warden import kong|higress FILE [-o OUT]`, with that importer.
pub(crate) fn import(
    importer: fn(&str, &str) -> Result<String, warden_import::ImportError>,
    file: &Path,
    output: Option<&Path>,
) -> CliResult {
    let yaml = std::fs::read_to_string(file)
        .map_err(|e| HostError::Config(format!("cannot read {}: {e}", file.display())))?;
    let policy = importer(&yaml, &file.display().to_string())?;
    match output {
        Some(out) => std::fs::write(out, policy)
            .map_err(|e| HostError::Config(format!("cannot write {}: {e}", out.display())))?,
        None => print!("{policy}"),
    }
    Ok(())
}

/// `warden fmt [--check] FILE…`: each file formatted in place (written to
/// a temporary file beside it, then renamed over it: never half-written),
/// or, with `check`, only reported.
pub(crate) fn fmt(files: &[PathBuf], check: bool) -> ExitCode {
    let mut ok = true;
    for file in files {
        let name = file.display().to_string();
        let source = match read_policy(file) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
                continue;
            }
        };
        let formatted = match warden_engine::format(&source) {
            Ok(f) => f,
            Err(d) => {
                eprint!("{}", d.render(&name, &source));
                ok = false;
                continue;
            }
        };
        if formatted == source {
            continue;
        }
        if check {
            println!("{name}: not formatted");
            ok = false;
            continue;
        }
        let tmp = file.with_extension("fmt-tmp");
        let written = std::fs::write(&tmp, &formatted).and_then(|()| std::fs::rename(&tmp, file));
        match written {
            Ok(()) => println!("{name}: formatted"),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                eprintln!("error: cannot write {name}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) fn hash_secret() -> CliResult {
    use std::io::{IsTerminal, Read};
    const MAX: u64 = 64 * 1024;
    if std::io::stdin().is_terminal() {
        return Err(HostError::Config(
            "pipe the secret in (a terminal would echo it): `printf %s \"$SECRET\" | warden hash-secret`".into(),
        )
        .into());
    }
    let mut secret = Vec::new();
    std::io::stdin()
        .take(MAX + 1)
        .read_to_end(&mut secret)
        .map_err(HostError::Io)?;
    if secret.len() as u64 > MAX {
        return Err(HostError::Config(format!("the secret is longer than {MAX} bytes")).into());
    }
    if secret.last() == Some(&b'\n') {
        secret.pop();
        if secret.last() == Some(&b'\r') {
            secret.pop();
        }
    }
    if secret.is_empty() {
        return Err(HostError::Config(
            "no secret on stdin (e.g. `printf %s \"$SECRET\" | warden hash-secret`)".into(),
        )
        .into());
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HostError::Config(format!("no OS randomness: {e}")))?;
    let phc = warden_engine::hash_argon2id(&secret, &salt).map_err(HostError::Config)?;
    println!("{phc}");
    Ok(())
}

pub(crate) fn check(files: &[PathBuf], limits: &Limits) -> ExitCode {
    let options = RuntimeOptions {
        deadline: Duration::from_millis(limits.deadline_ms),
        memory_limit: usize::from(limits.memory_mib) << 20,
        ..RuntimeOptions::default()
    };
    let mut ok = true;
    for file in files {
        let name = file.display().to_string();
        let result = read_policy(file)
            .map_err(Into::into)
            .and_then(|source| load(GuestComponent::shared()?, &name, &source, options.clone()));
        match result {
            Ok(_) => println!("{name}: ok"),
            Err(e) if e.is::<Reported>() => ok = false,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub(crate) fn explain(
    policy: &Path,
    method: &str,
    headers: &[String],
    data: Option<String>,
    url: &str,
) -> CliResult {
    let source = read_policy(policy)?;
    let runtime = load(
        GuestComponent::shared()?,
        &policy.display().to_string(),
        &source,
        RuntimeOptions::from_env()?,
    )?;
    let req = cli_request(method, headers, data.as_deref(), url)?;
    let explanation = runtime.explain(&req)?;
    println!("{}", explanation.trim_end());
    Ok(())
}

/// The request `explain` is asked about: `Name: value` headers; the whole
/// body known, so a decision never waits for it.
fn cli_request(
    method: &str,
    headers: &[String],
    data: Option<&str>,
    url: &str,
) -> Result<OwnedRequest, HostError> {
    let mut pairs = Vec::new();
    for header in headers {
        let (name, value) = header.split_once(':').ok_or_else(|| {
            HostError::Config(format!("invalid header `{header}`: expected `Name: value`"))
        })?;
        pairs.push((name.trim().to_string(), value.trim().to_string()));
    }
    crate::testing::request_of(method, url, &pairs, data)
}

/// `warden graph FILE` and `warden explain --graph`: the decision graph in
/// DOT (the guest draws it), with a request's path when one is given; SVG
/// through Graphviz's `dot` when asked for or written to `*.svg`.
pub(crate) fn graph(
    policy: &Path,
    request: Option<(&str, &[String], Option<String>, &str)>,
    svg: bool,
    output: Option<&Path>,
) -> CliResult {
    let source = read_policy(policy)?;
    let runtime = load(
        GuestComponent::shared()?,
        &policy.display().to_string(),
        &source,
        RuntimeOptions::from_env()?,
    )?;
    let req = match request {
        Some((method, headers, data, url)) => {
            Some(cli_request(method, headers, data.as_deref(), url)?)
        }
        None => None,
    };
    let dot = runtime.graph(req.as_ref())?;
    let svg = svg || output.is_some_and(|o| o.extension().is_some_and(|e| e == "svg"));
    let bytes = if svg {
        render_svg(&dot)?
    } else {
        dot.into_bytes()
    };
    match output {
        Some(out) => std::fs::write(out, bytes)
            .map_err(|e| HostError::Config(format!("cannot write {}: {e}", out.display())))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes).map_err(HostError::Io)?;
        }
    }
    Ok(())
}

/// DOT → SVG with Graphviz's `dot`.
fn render_svg(dot: &str) -> Result<Vec<u8>, HostError> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            HostError::Config(format!(
                "SVG needs Graphviz's `dot` ({e}): install it (Debian: apt-get install graphviz), or print DOT without --svg"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).map_err(HostError::Io)?;
    }
    let out = child.wait_with_output().map_err(HostError::Io)?;
    if !out.status.success() {
        return Err(HostError::Config(format!(
            "dot failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// `warden keys generate`: a new key in `dir`.
pub(crate) fn generate_key(alg: &str, dir: &Path) -> CliResult {
    let alg = warden_engine::Alg::parse(alg)
        .filter(|a| warden_engine::Alg::HOST_SIGNING.contains(a))
        .ok_or_else(|| HostError::Config(format!("--alg {alg}: use RS256, ES256 or EdDSA")))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (path, kid) = warden_host::generate_key(alg, dir, now)?;
    println!("{kid}\t{}", path.display());
    Ok(())
}
