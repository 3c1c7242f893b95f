//! HTTPS in `warden serve`: TLS terminated by the gateway itself (rustls,
//! HTTP/1.1 and h2 by ALPN) beside the plain listener, with a certificate the
//! test makes (rcgen) and a real TLS client (reqwest over rustls); and the
//! scheme the policy sees: `https` on the TLS listener, and on the plain one
//! only what a trusted proxy's `X-Forwarded-Proto` says.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

mod support;

use std::path::PathBuf;

use reqwest::blocking::Client;
use support::{Server, certificate, tls_client, tls_server, warden};
use warden_engine::fixtures::CONSUMER1 as C1;

#[test]
fn https_with_h2_and_http1_by_alpn_and_the_policy_sees_https() {
    let (s, pem) = tls_server(&[], &[]);
    let base = s.https_localhost();
    let port = base.rsplit(':').next().unwrap().to_string();
    for (h1, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let client = tls_client(&pem, h1);
        // 401 with the request URL as realm: the policy saw https.
        let resp = client.get(format!("{base}/a")).send().unwrap();
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()["www-authenticate"],
            format!("Bearer realm=\"https://localhost:{port}/a\"").as_str()
        );
        // A token over HTTPS, then the protected route with it.
        let url = format!(
            "{base}/a/oauth2/token?grant_type=client_credentials&client_id={}&client_secret={}",
            C1.0, C1.1
        );
        let token: serde_json::Value = client.get(url).send().unwrap().json().unwrap();
        let token = token["access_token"].as_str().unwrap();
        let resp = client
            .get(format!("{base}/a/x"))
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!((resp.version(), resp.status().as_u16()), (version, 200));
        let echo: serde_json::Value = resp.json().unwrap();
        assert_eq!(echo["headers"]["x-mse-consumer"], "consumer1");
        assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
        assert_eq!(
            echo["headers"]["host"],
            format!("localhost:{port}").as_str()
        );
    }
    // The plain listener still serves, as http.
    let resp = s.get("localhost", "/a", None);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"http://localhost/a\"")
    );
    // A client that does not trust the certificate gets no answer at all.
    let stranger = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(stranger.get(format!("{base}/a")).send().is_err());
}

#[test]
fn x_forwarded_proto_counts_only_from_trusted_proxies() {
    // The realm of a 401 for `/a` at api.local, with `X-Forwarded-Proto: proto`.
    let realm_with = |s: &Server, proto: &str| {
        let resp = s
            .client
            .get(format!("{}/a", s.base))
            .header("host", "api.local")
            .header("x-forwarded-proto", proto)
            .send()
            .unwrap();
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let realm = |s: &Server| realm_with(s, "https");
    let echoed_proto = |s: &Server| {
        let resp = s
            .client
            .get(format!("{}/public", s.base))
            .header("x-forwarded-proto", "https")
            .send()
            .unwrap();
        let echo: serde_json::Value = resp.json().unwrap();
        echo["headers"]["x-forwarded-proto"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The test's requests come from 127.0.0.1.
    let trusting = Server::launch(&["--trusted-proxy", "127.0.0.0/8"], &[]);
    assert_eq!(realm(&trusting), "Bearer realm=\"https://api.local/a\"");
    assert_eq!(echoed_proto(&trusting), "https");
    // A proxy that appends: its own value, the last, counts.
    assert_eq!(
        realm_with(&trusting, "https, http"),
        "Bearer realm=\"http://api.local/a\""
    );
    let other = Server::launch(&["--trusted-proxy", "10.0.0.0/8"], &[]);
    assert_eq!(realm(&other), "Bearer realm=\"http://api.local/a\"");
    assert_eq!(
        echoed_proto(&other),
        "http",
        "a client's claim is overwritten"
    );
}

#[test]
fn unusable_tls_files_and_flags_are_clear_errors() {
    let (cert, key, _) = certificate("bad");
    let junk = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let serve = |args: &[&std::ffi::OsStr]| {
        let out = warden()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = serve(&[
        "--tls-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls-cert".as_ref(),
        junk.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("junk.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
    // The certificate as its own key: no private key in it.
    let (code, err) = serve(&[
        "--tls-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        cert.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TLS: cannot use"), "{err}");
    // --tls-listen without a certificate is refused by the argument parser.
    let (code, err) = serve(&["--tls-listen".as_ref(), "127.0.0.1:0".as_ref()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-cert"), "{err}");
    let (code, err) = serve(&["--trusted-proxy".as_ref(), "proxy.local".as_ref()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a CIDR"), "{err}");
}
