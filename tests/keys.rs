//! Warden's own asymmetric tokens through the real binary: `warden keys
//! generate` makes the keys, `warden serve --keys` signs with them, and
//! independent libraries — PyJWT (PyPI) and `jose` (npm) — verify the
//! tokens knowing nothing but the JWKS URL Warden publishes. Rotation by
//! SIGHUP: a new key signs, the old one verifies until its file is removed.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/peers.rs"]
mod peers;
#[path = "support/redis.rs"]
mod redis_server;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, warden};

const C1: (&str, &str) = (
    "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);
const ISSUER: &str = "https://gateway.example";

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("keys-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `warden keys generate`: the new kid.
fn generate(alg: &str, dir: &Path) -> String {
    let out = warden()
        .args(["keys", "generate", "--alg", alg, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let (kid, path) = line.trim().split_once('\t').unwrap();
    assert!(Path::new(path).is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "private keys are owner-only");
    }
    kid.to_string()
}

/// `policies/signing-keys.policy` with `signing_alg alg`, served with `keys`.
fn serve(alg: &str, keys: &Path, dir: &Path) -> Server {
    serve_with(alg, keys, dir, &[])
}

fn serve_with(alg: &str, keys: &Path, dir: &Path, extra: &[&str]) -> Server {
    let source = std::fs::read_to_string(support::policy("signing-keys.policy"))
        .unwrap()
        .replace("signing_alg ES256", &format!("signing_alg {alg}"));
    assert!(source.contains(&format!("signing_alg {alg}")));
    let file = dir.join("policy.policy");
    std::fs::write(&file, source).unwrap();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--policy".as_ref(),
        file.as_os_str(),
        "--keys".as_ref(),
        keys.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    Server::launch(&args, &[])
}

/// POST `form` to `path` as `client` (HTTP Basic): status and body.
fn post(server: &Server, path: &str, client: (&str, &str), form: &[(&str, &str)]) -> (u16, String) {
    let resp = server
        .client
        .post(format!("{}{path}", server.base))
        .basic_auth(client.0, Some(client.1))
        .form(form)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.text().unwrap())
}

const C2: (&str, &str) = (
    "87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);

#[test]
fn revoked_tokens_are_refused_on_every_node_and_introspection_says_so() {
    let dir = tmp("revocation");
    let keys = dir.join("keys");
    generate("ES256", &keys);
    let store = redis_server::shared().url(7);
    let a = serve_with("ES256", &keys, &dir, &["--store", &store]);
    let b = serve_with("ES256", &keys, &dir, &["--store", &store]);
    let t = token(&a);
    assert_eq!((status(&a, &t), status(&b, &t)), (200, 200));

    let (code, body) = post(&a, "/a/oauth2/introspect", C1, &[("token", &t)]);
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (doc["active"].clone(), doc["sub"].clone()),
        (Value::Bool(true), Value::from("consumer1"))
    );
    assert_eq!(doc["client_id"], C1.0);
    // Wrong client secret: RFC 6749's invalid_client, 401 for Basic.
    assert_eq!(
        post(&a, "/a/oauth2/revoke", (C1.0, "wrong"), &[("token", &t)]).0,
        401
    );
    // Another client may not revoke it (200, as RFC 7009 answers, and no effect).
    assert_eq!(post(&a, "/a/oauth2/revoke", C2, &[("token", &t)]).0, 200);
    assert_eq!(status(&a, &t), 200);
    // Its own client revokes it on node A: node B refuses it within a second.
    assert_eq!(
        post(
            &a,
            "/a/oauth2/revoke",
            C1,
            &[("token", &t), ("token_type_hint", "access_token")]
        )
        .0,
        200
    );
    assert_eq!(status(&a, &t), 401);
    let started = Instant::now();
    while status(&b, &t) != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node B still accepts the revoked token"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (_, body) = post(&b, "/a/oauth2/introspect", C1, &[("token", &t)]);
    assert_eq!(body, r#"{"active":false}"#);
    // Garbage is inactive; revoking it is a 200 that does nothing.
    assert_eq!(
        post(&b, "/a/oauth2/introspect", C1, &[("token", "junk")]).1,
        r#"{"active":false}"#
    );
    assert_eq!(
        post(&b, "/a/oauth2/revoke", C1, &[("token", "junk")]).0,
        200
    );
    let fresh = token(&b);
    assert_eq!(status(&a, &fresh), 200, "other tokens are untouched");
    let get = b
        .client
        .get(format!("{}/a/oauth2/revoke", b.base))
        .send()
        .unwrap();
    assert_eq!(get.status(), 405);
}

fn token(server: &Server) -> String {
    let resp = server
        .client
        .post(format!("{}/a/oauth2/token", server.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", C1.0),
            ("client_secret", C1.1),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

fn status(server: &Server, token: &str) -> u16 {
    server.get("gw", "/a/x", Some(token)).status().as_u16()
}

#[test]
fn es256_rs256_and_eddsa_tokens_verify_in_pyjwt_and_jose_from_the_jwks_alone() {
    for alg in ["ES256", "RS256", "EdDSA"] {
        let dir = tmp(alg);
        let keys = dir.join("keys");
        let kid = generate(alg, &keys);
        let server = serve(alg, &keys, &dir);
        let t = token(&server);
        assert_eq!(kid_of(&t), kid);
        assert_eq!(status(&server, &t), 200, "{alg}: {}", server.logs());
        let jwks = format!("{}/.well-known/jwks.json", server.base);
        for (library, verify) in [
            (
                "PyJWT",
                peers::verify_with_pyjwt as fn(&str, &str, &str, &str) -> _,
            ),
            ("jose", peers::verify_with_jose),
        ] {
            let claims = verify(&jwks, &t, alg, ISSUER)
                .unwrap_or_else(|e| panic!("{library} refused Warden's {alg} token: {e}"));
            assert_eq!(claims["sub"], "consumer1", "{library} {alg}");
            assert_eq!(claims["client_id"], C1.0, "{library} {alg}");
            // The same library refuses a token whose claims were changed
            // after signing: it really checked the signature.
            let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
            parts[1] = parts[1].replacen('e', "f", 1);
            let forged = parts.join(".");
            assert!(
                verify(&jwks, &forged, alg, ISSUER).is_err(),
                "{library} accepted a forged {alg} token"
            );
            assert!(
                verify(&jwks, &t, alg, "https://someone.else").is_err(),
                "{library} accepted another issuer"
            );
        }
        assert_eq!(status(&server, &t.replacen('e', "f", 1)), 401);
    }
}

#[test]
fn a_new_key_signs_after_sighup_and_the_old_one_verifies_until_removed() {
    let dir = tmp("rotation");
    let keys = dir.join("keys");
    let first = generate("ES256", &keys);
    let server = serve("ES256", &keys, &dir);
    let old = token(&server);
    assert_eq!(kid_of(&old), first);

    std::thread::sleep(Duration::from_millis(1100)); // a later creation time
    let second = generate("ES256", &keys);
    assert!(second > first, "{second} sorts after {first}");
    hup(&server);
    let new = eventually(|| {
        let t = token(&server);
        (kid_of(&t) == second).then_some(t)
    })
    .unwrap_or_else(|| panic!("SIGHUP did not rotate:\n{}", server.logs()));
    assert_eq!(status(&server, &old), 200, "the old key still verifies");
    assert_eq!(status(&server, &new), 200);
    let jwks = format!("{}/.well-known/jwks.json", server.base);
    peers::verify_with_pyjwt(&jwks, &old, "ES256", ISSUER).unwrap();
    peers::verify_with_pyjwt(&jwks, &new, "ES256", ISSUER).unwrap();

    std::fs::remove_file(keys.join(format!("{first}.pem"))).unwrap();
    hup(&server);
    assert!(
        eventually(|| (status(&server, &old) == 401).then_some(())).is_some(),
        "a removed key stops verifying:\n{}",
        server.logs()
    );
    assert_eq!(status(&server, &new), 200);
    let published: Value = server
        .get("gw", "/.well-known/jwks.json", None)
        .json()
        .unwrap();
    let kids: Vec<&str> = published["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [second.as_str()]);

    // A key file that does not read keeps the keys in use.
    std::fs::write(keys.join("zz-broken.pem"), "not a key").unwrap();
    hup(&server);
    assert!(
        eventually(|| server
            .logs()
            .contains("signing keys not reloaded")
            .then_some(()))
        .is_some(),
        "{}",
        server.logs()
    );
    assert_eq!(status(&server, &new), 200);
}

#[test]
fn private_jwks_made_by_pyjwt_sign_tokens_pyjwt_verifies() {
    for alg in ["ES256", "RS256", "EdDSA"] {
        let dir = tmp(&format!("jwk-{alg}"));
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let kid = format!("pyjwt-{}", alg.to_ascii_lowercase());
        let out = std::process::Command::new(peers::python())
            .arg(peers::script("idp.py"))
            .args([
                "private-jwk",
                keys.join("made.jwk").to_str().unwrap(),
                &kid,
                alg,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = serve(alg, &keys, &dir);
        let t = token(&server);
        assert_eq!(kid_of(&t), kid, "the JWK's own kid");
        let jwks = format!("{}/.well-known/jwks.json", server.base);
        peers::verify_with_pyjwt(&jwks, &t, alg, ISSUER).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(status(&server, &t), 200);
    }
}

#[test]
fn metadata_names_the_endpoints_and_bad_keys_stop_the_start() {
    let dir = tmp("metadata");
    let keys = dir.join("keys");
    generate("EdDSA", &keys);
    let server = serve("EdDSA", &keys, &dir);
    let resp = server.get("gw", "/.well-known/oauth-authorization-server", None);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let meta: Value = resp.json().unwrap();
    assert_eq!(meta["issuer"], ISSUER);
    assert_eq!(meta["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
    assert_eq!(meta["token_endpoint"], format!("{ISSUER}/oauth2/token"));
    drop(server);

    // The key a scope needs is missing: its token requests fail closed.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let server = serve("ES256", &empty, &dir);
    let resp = server
        .client
        .post(format!("{}/a/oauth2/token", server.base))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", C1.0),
            ("client_secret", C1.1),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    drop(server);

    std::fs::write(
        keys.join("broken.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = warden()
        .args(["serve", "--listen", "127.0.0.1:0", "--keys"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.pem") && err.contains("not a private key"),
        "{err}"
    );

    let out = warden()
        .args(["keys", "generate", "--alg", "HS256", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("use RS256, ES256 or EdDSA"));
}

fn hup(server: &Server) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn eventually<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
