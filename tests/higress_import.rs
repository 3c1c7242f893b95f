//! `warden import higress` and `warden fmt` through the real binary: the
//! Higress page's WasmPlugin examples are imported, served by `warden serve`
//! over loopback, and behave as the page says (tokens from the token
//! endpoint, route and domain authorization, gateway-wide authentication);
//! a YAML mistake is reported at its line; every policy in `policies/` is
//! already formatted, and `fmt` keeps comments and is idempotent.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::path::PathBuf;

use support::Server;

const C1: (&str, &str) = (
    "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);
const C2: (&str, &str) = (
    "87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);

fn fixture(name: &str) -> String {
    format!(
        "{}/../import/tests/higress/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("higress-{}-{name}", std::process::id()))
}

/// `warden import higress FIXTURE -o FILE`, plus `extra` policy text.
fn import(name: &str, extra: &str) -> PathBuf {
    let out = tmp(&format!("{name}.policy"));
    let status = support::warden()
        .args([
            "import",
            "higress",
            &fixture(name),
            "-o",
            out.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let mut text = std::fs::read_to_string(&out).unwrap();
    text.push_str(extra);
    std::fs::write(&out, text).unwrap();
    out
}

#[test]
fn the_pages_route_and_domain_example_behaves_as_documented_over_loopback() {
    // Higress's ingress names are the gateway's routes: under `warden
    // serve` they are declared as routes.
    let file = import(
        "demo.yaml",
        "\nroute route-a { path_prefix /a }\nroute route-b { path_prefix /b }\n",
    );
    let gw = Server::launch(&["--policy", file.to_str().unwrap()], &[]);
    let t1 = gw.token("gw.test", "/a/oauth2/token", C1);
    let t2 = gw.token("test.com", "/oauth2/token", C2);
    assert_eq!(gw.get("gw.test", "/a/x", Some(&t1)).status(), 200);
    assert_eq!(gw.get("gw.test", "/b", Some(&t1)).status(), 200);
    assert_eq!(gw.get("gw.test", "/a/x", Some(&t2)).status(), 403);
    assert_eq!(gw.get("gw.test", "/a/x", None).status(), 401);
    assert_eq!(gw.get("test.com", "/x", Some(&t2)).status(), 200);
    assert_eq!(gw.get("api.example.com", "/x", Some(&t2)).status(), 200);
    assert_eq!(gw.get("test.com", "/x", Some(&t1)).status(), 403);
    assert_eq!(
        gw.get("gw.test", "/public", None).status(),
        200,
        "global_auth false"
    );
    let seen: serde_json::Value = gw.get("test.com", "/x", Some(&t2)).json().unwrap();
    assert_eq!(seen["headers"]["x-mse-consumer"], "consumer2");
}

#[test]
fn the_pages_gateway_wide_example_authenticates_everything() {
    let file = import("gateway-wide.yaml", "");
    let gw = Server::launch(&["--policy", file.to_str().unwrap()], &[]);
    assert_eq!(gw.get("any.test", "/x", None).status(), 401);
    let t = gw.token("any.test", "/oauth2/token", C1);
    assert_eq!(gw.get("other.test", "/y", Some(&t)).status(), 200);
}

#[test]
fn a_yaml_mistake_is_reported_at_its_line() {
    let bad = tmp("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: extensions.higress.io/v1alpha1\nkind: WasmPlugin\nspec:\n  defaultConfig:\n    global_auth: true\n    consumers:\n    - name: c\n      client_id: i\n      clientsecret: s\n",
    )
    .unwrap();
    let out = support::warden()
        .args(["import", "higress", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.yaml:9:"), "{err}");
}

#[test]
fn policies_are_formatted_and_fmt_keeps_comments() {
    let mut files: Vec<String> = std::fs::read_dir(support::policy(""))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".policy") || p.ends_with(".test"))
        .collect();
    files.sort();
    let out = support::warden()
        .arg("fmt")
        .arg("--check")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let messy = tmp("messy.policy");
    std::fs::write(&messy, "# head\nglobal_auth   true ;  keep_token false # why\nconsumer c {client_id i;client_secret s}\n\n\n# tail\n").unwrap();
    let out = support::warden()
        .args(["fmt", "--check", messy.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "--check reports");
    let out = support::warden()
        .args(["fmt", messy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let once = std::fs::read_to_string(&messy).unwrap();
    for comment in ["# head", "# why", "# tail"] {
        assert!(once.contains(comment), "{comment} kept:\n{once}");
    }
    assert!(
        once.contains("\nkeep_token false"),
        "one item per line:\n{once}"
    );
    let out = support::warden()
        .args(["fmt", "--check", messy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "idempotent:\n{once}");
}
