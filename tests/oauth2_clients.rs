//! Real OAuth2 client libraries against the real `warden serve`, each doing
//! the protocol itself: Python's `requests-oauthlib` (`BackendApplicationClient`,
//! and `WebApplicationClient` with `pkce="S256"`) and `authlib`
//! (`OAuth2Session`), installed by the harness into its venv
//! (tests/support/peers.rs; the flows are tests/support/peers/oauth_clients.py),
//! and the Rust `oauth2` crate (`BasicClient` over the blocking reqwest client).
//!
//! - Higress dialect, the embedded demo policy (HTTPS for the Python
//!   clients, which refuse plain HTTP; both listeners for the crate): client
//!   credentials with HTTP Basic and with the secret in the form
//!   (requests-oauthlib `auth=HTTPBasicAuth` / `include_client_id=True`,
//!   authlib `client_secret_basic` / `client_secret_post`, oauth2
//!   `AuthType::BasicAuth` / `AuthType::RequestBody`); the token on a
//!   route the consumer is allowed on (200, `x-mse-consumer` at the echo
//!   upstream) and on one it is not (403 `insufficient_scope`); a wrong
//!   secret is the crate's `invalid_client`. A secret with `+`, `%`, `&`,
//!   `=` and `/` works through the crate's RFC 6749 §2.3.1 Basic encoding,
//!   through the Python clients' form bodies and through their Basic, which
//!   does not encode (see `secrets_with_form_special_characters`).
//! - Kong dialect, `policies/kong-code-pkce.policy` over HTTPS: the
//!   authorization code flow with PKCE S256 — the library builds the
//!   authorize request and the verifier, the resource owner's application
//!   POSTs it with the `provision_key`, the library takes the code from the
//!   answer's `redirect_uri` (checking `state`) and exchanges it with the
//!   verifier (the crate's wrong verifier is `invalid_grant`, a used code
//!   too) — for the public and the confidential client; the token on
//!   `/api`, then a refresh (authlib `refresh_token`, requests-oauthlib
//!   `refresh_token`, oauth2 `exchange_refresh_token`) whose token works
//!   while the old one is refused.
//!
//! The access tokens are checked with PyJWT against RFC 9068: `typ`
//! `at+jwt` or `application/at+jwt` (§4; Warden sends the latter, as
//! Higress does), HS256 with the key Warden signs with (the client secret under Higress,
//! the policy's `signing_key` under Kong), `iss`, `sub`, `aud`, `exp`,
//! `iat`, `jti` and `client_id` present and consistent with the grant.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)] // test code may unwrap

#[path = "support/peers.rs"]
mod peers;
mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse, TokenUrl,
};
use reqwest::blocking::Client;
use serde_json::Value;
use support::{Server, redirect_param, tls_server};

/// The demo policy's consumers: (name, client_id, client_secret).
const CONSUMER1: (&str, &str, &str) = (
    "consumer1",
    "12345678-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "abcdefgh-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);
const CONSUMER2: (&str, &str, &str) = (
    "consumer2",
    "87654321-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
    "hgfedcba-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
);
const HIGRESS_ISSUER: &str = "Higress-Gateway";

const SIGNING_KEY: &str = "clients-e2e-signing-key-0123456789abcdef01";
const PROVISION_KEY: &str = "provision-clients-123";
/// The Kong dialect's default issuer, and the audience of the `api`
/// plugin's tokens (`global_credentials false`: its route).
const KONG_ISSUER: &str = "Warden";
const KONG_AUDIENCE: &str = "api";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The certificate's PEM in a file, for the Python clients' `verify`.
fn ca_file(pem: &str, name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("oauth2-clients-{}-{name}.pem", std::process::id()));
    std::fs::write(&path, pem).unwrap();
    path
}

/// A client trusting only `pem` that follows no redirects (as the oauth2
/// crate asks of its HTTP client).
fn client_trusting(pem: &str) -> Client {
    Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A token request's outcome, or a panic that shows what Warden answered.
fn loud<T, RE: std::error::Error + 'static, TE: oauth2::ErrorResponse + 'static>(
    what: &str,
    result: Result<T, RequestTokenError<RE, TE>>,
) -> T {
    result.unwrap_or_else(|e| match &e {
        RequestTokenError::Parse(err, body) => panic!(
            "{what}: the oauth2 crate could not parse Warden's answer ({err}): {}",
            String::from_utf8_lossy(body)
        ),
        RequestTokenError::ServerResponse(r) => panic!("{what}: Warden refused: {r}"),
        other => panic!("{what}: {other} ({other:?})"),
    })
}

/// PyJWT's RFC 9068 check of `token` (HS256 with `key`): `{header, claims}`.
fn pyjwt(token: &str, key: &str, issuer: &str, audience: &str) -> Value {
    peers::peer_json(
        "oauth_clients.py",
        &["verify", token, key, issuer, audience],
    )
}

/// The RFC 9068 claims of a token Warden issued: present, of the grant,
/// and consistent with each other and with the token response. The `jti`.
fn assert_rfc9068(
    checked: &Value,
    (iss, sub, aud, client_id): (&str, &str, &str, &str),
    expires_in: u64,
) -> String {
    let (header, claims) = (&checked["header"], &checked["claims"]);
    assert_eq!(header["alg"], "HS256", "{checked}");
    assert_eq!(header["typ"], "application/at+jwt", "{checked}");
    assert_eq!(claims["iss"], iss, "{checked}");
    assert_eq!(claims["sub"], sub, "{checked}");
    assert_eq!(claims["aud"], aud, "{checked}");
    assert_eq!(claims["client_id"], client_id, "{checked}");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert!(
        iat.abs_diff(now()) <= 120,
        "iat {iat} is not now: {checked}"
    );
    assert_eq!(exp - iat, expires_in, "exp - iat is expires_in: {checked}");
    let jti = claims["jti"].as_str().unwrap();
    assert!(
        jti.len() == 36 && jti.as_bytes()[14] == b'4',
        "jti is a UUID v4: {checked}"
    );
    jti.to_string()
}

// ---------------------------------------------------------------------------
// Higress dialect: client credentials against the demo policy.

/// The demo policy served over HTTPS (the Python clients refuse plain HTTP
/// for tokens, as RFC 6749 §3.2 says), and its plain listener.
fn demo() -> (Server, String, PathBuf) {
    let (server, pem) = tls_server(&[], &[]);
    let ca = ca_file(&pem, &format!("demo-{}", server.pid()));
    (server, pem, ca)
}

/// A client-credentials run of a Python library: the token response, the
/// PyJWT verdict and the calls, as the script printed them.
fn python_client_credentials(
    library: &str,
    auth: &str,
    base: &str,
    ca: &std::path::Path,
    (_, id, secret): (&str, &str, &str),
    calls: &[String],
) -> Value {
    let token_url = format!("{base}/oauth2/token");
    let mut args = vec![
        "client-credentials",
        library,
        auth,
        &token_url,
        ca.to_str().unwrap(),
        id,
        secret,
        HIGRESS_ISSUER,
    ];
    args.extend(calls.iter().map(String::as_str));
    peers::peer_json("oauth_clients.py", &args)
}

#[test]
fn python_clients_client_credentials_on_the_demo_policy() {
    let (server, _pem, ca) = demo();
    let base = server.https_localhost();
    let mut jtis = HashSet::new();
    let mut secrets = vec![];
    for (library, auth) in [
        ("requests-oauthlib", "basic"),
        ("requests-oauthlib", "form"),
        ("authlib", "basic"),
        ("authlib", "form"),
    ] {
        let what = format!("{library} ({auth})");
        // consumer1: route-a and route-b, not the *.example.com domains.
        let calls = [
            format!("{base}/a"),
            format!("{base}/b/x?y=1"),
            format!("{base}/@api.example.com"),
        ];
        let out = python_client_credentials(library, auth, &base, &ca, CONSUMER1, &calls);
        let token = &out["token"];
        assert_eq!(token["token_type"], "bearer", "{what}: {out}");
        assert_eq!(token["expires_in"], 7200, "{what}: {out}");
        let jti = assert_rfc9068(
            &out["jwt"],
            (HIGRESS_ISSUER, CONSUMER1.0, "default", CONSUMER1.1),
            7200,
        );
        assert!(jtis.insert(jti), "{what}: a fresh jti per token");
        let calls = out["calls"].as_array().unwrap();
        for allowed in &calls[..2] {
            assert_eq!(allowed["status"], 200, "{what}: {allowed}");
            assert_eq!(
                allowed["body"]["headers"]["x-mse-consumer"], CONSUMER1.0,
                "{what}: {allowed}"
            );
        }
        assert_eq!(calls[1]["body"]["path"], "/b/x", "{what}");
        let denied = &calls[2];
        assert_eq!(denied["status"], 403, "{what}: {denied}");
        assert!(
            denied["www_authenticate"]
                .as_str()
                .unwrap()
                .contains("error=\"insufficient_scope\""),
            "{what}: {denied}"
        );
        secrets.push(token["access_token"].as_str().unwrap().to_string());

        // consumer2: the other way round.
        let calls = [format!("{base}/a"), format!("{base}/x@test.com")];
        let out = python_client_credentials(library, auth, &base, &ca, CONSUMER2, &calls);
        assert_rfc9068(
            &out["jwt"],
            (HIGRESS_ISSUER, CONSUMER2.0, "default", CONSUMER2.1),
            7200,
        );
        let calls = out["calls"].as_array().unwrap();
        assert_eq!(calls[0]["status"], 403, "{what}: {}", calls[0]);
        assert_eq!(calls[1]["status"], 200, "{what}: {}", calls[1]);
        assert_eq!(
            calls[1]["body"]["headers"]["x-mse-consumer"], CONSUMER2.0,
            "{what}"
        );
    }
    let mut keep: Vec<&str> = secrets.iter().map(String::as_str).collect();
    keep.extend([CONSUMER1.2, CONSUMER2.2]);
    server.assert_logs_keep(&keep);
}

#[test]
fn rust_oauth2_client_credentials_on_the_demo_policy() {
    let (server, pem, _ca) = demo();
    // The crate on both listeners: plain HTTP and HTTPS.
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // HTTP/1.1: over h2 reqwest sends the URL's authority as `:authority`
    // and no `Host`, and the domain check below needs another host.
    let https = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .http1_only()
        .build()
        .unwrap();
    let mut jtis = HashSet::new();
    for (base, client) in [(&server.base, &http), (&server.https_localhost(), &https)] {
        for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
            let what = format!("oauth2 {auth:?} at {base}");
            let oauth = BasicClient::new(ClientId::new(CONSUMER1.1.into()))
                .set_client_secret(ClientSecret::new(CONSUMER1.2.into()))
                .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).unwrap())
                .set_auth_type(auth.clone());
            let token: BasicTokenResponse =
                loud(&what, oauth.exchange_client_credentials().request(client));
            assert_eq!(
                token.expires_in(),
                Some(std::time::Duration::from_secs(7200))
            );
            assert!(token.refresh_token().is_none(), "{what}");
            let access = token.access_token().secret();
            let jti = assert_rfc9068(
                &pyjwt(access, CONSUMER1.2, HIGRESS_ISSUER, "default"),
                (HIGRESS_ISSUER, CONSUMER1.0, "default", CONSUMER1.1),
                7200,
            );
            assert!(jtis.insert(jti), "{what}");

            let resp = client
                .get(format!("{base}/a/orders"))
                .bearer_auth(access)
                .send()
                .unwrap();
            assert_eq!(resp.status(), 200, "{what}");
            let echo: Value = resp.json().unwrap();
            assert_eq!(echo["headers"]["x-mse-consumer"], CONSUMER1.0, "{what}");
            let resp = client
                .get(format!("{base}/"))
                .header("host", "shop.example.com")
                .bearer_auth(access)
                .send()
                .unwrap();
            assert_eq!(resp.status(), 403, "{what}: {}", resp.text().unwrap());

            // A wrong secret: the crate reports Warden's RFC 6749 error.
            let wrong = BasicClient::new(ClientId::new(CONSUMER1.1.into()))
                .set_client_secret(ClientSecret::new("wrong".into()))
                .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).unwrap())
                .set_auth_type(auth.clone());
            match wrong.exchange_client_credentials().request(client) {
                Err(RequestTokenError::ServerResponse(r)) => {
                    assert_eq!(r.error().as_ref(), "invalid_client", "{what}");
                }
                other => panic!("{what}: a wrong secret gave {other:?}"),
            }
        }
    }
}

/// A consumer whose secret holds what RFC 6749 §2.3.1's form-encoding of
/// HTTP Basic credentials changes: `+`, `%`, `&`, `=`, `/`.
const ODD: (&str, &str, &str) = ("odd", "odd-client", "s3cr3t+with/slash=and%41&more");

#[test]
fn secrets_with_form_special_characters() {
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("oauth2-clients-{}-odd.policy", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "global_auth false\n\
             consumer {} {{ client_id \"{}\"; client_secret \"{}\" }}\n\
             route route-a {{ path_prefix /a; upstream echo }}\n\
             rule {{ match route [route-a]; allow [{}] }}\n",
            ODD.0, ODD.1, ODD.2, ODD.0
        ),
    )
    .unwrap();
    let (server, pem) = tls_server(&["--policy", file.to_str().unwrap()], &[]);
    let ca = ca_file(&pem, &format!("odd-{}", server.pid()));
    let base = server.https_localhost();

    // The oauth2 crate form-encodes the id and secret inside HTTP Basic, as
    // RFC 6749 §2.3.1 says, and Warden decodes them so: both ways work.
    let http = client_trusting(&pem);
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let oauth = BasicClient::new(ClientId::new(ODD.1.into()))
            .set_client_secret(ClientSecret::new(ODD.2.into()))
            .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).unwrap())
            .set_auth_type(auth.clone());
        let token: BasicTokenResponse = loud(
            &format!("oauth2 {auth:?}"),
            oauth.exchange_client_credentials().request(&http),
        );
        let resp = http
            .get(format!("{base}/a"))
            .bearer_auth(token.access_token().secret())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "oauth2 {auth:?}");
    }
    // The Python clients, with the secret in the form body and through HTTP
    // Basic. Their Basic puts the secret in unencoded (requests'
    // `HTTPBasicAuth`, authlib's `client_secret_basic`), against RFC 6749
    // §2.3.1: decoded, `+` would be a space and `%41` an `A`. Warden checks
    // the secret as sent when the decoded one does not match, so both kinds
    // of client work.
    for library in ["requests-oauthlib", "authlib"] {
        for auth in ["form", "basic"] {
            let out =
                python_client_credentials(library, auth, &base, &ca, ODD, &[format!("{base}/a")]);
            assert_rfc9068(&out["jwt"], (HIGRESS_ISSUER, ODD.0, "default", ODD.1), 7200);
            assert_eq!(out["calls"][0]["status"], 200, "{library} ({auth}): {out}");
        }
    }
}

// ---------------------------------------------------------------------------
// Kong dialect: authorization code with PKCE, then refresh.

/// `policies/kong-code-pkce.policy` over HTTPS.
fn kong() -> (Server, String, PathBuf) {
    let path = support::policy("kong-code-pkce.policy");
    let (server, pem) = tls_server(
        &["--policy", &path],
        &[
            ("WARDEN_SIGNING_KEY", SIGNING_KEY),
            ("PROVISION_KEY", PROVISION_KEY),
        ],
    );
    let ca = ca_file(&pem, &format!("kong-{}", server.pid()));
    (server, pem, ca)
}

/// The public client (PKCE required) and the confidential one (HTTP Basic).
const MOBILE: (&str, Option<&str>, &str) = ("mobile-client", None, "http://localhost:8000/cb");
const WEBAPP: (&str, Option<&str>, &str) = (
    "webapp-client",
    Some("webapp-secret"),
    "https://app.example.com/callback",
);

#[test]
fn python_clients_authorization_code_with_pkce_on_kong() {
    let (server, _pem, ca) = kong();
    let base = format!("{}/api", server.https_localhost());
    for library in ["authlib", "requests-oauthlib"] {
        for (client_id, secret, redirect) in [MOBILE, WEBAPP] {
            let what = format!("{library} as {client_id}");
            let user = format!("user-{library}");
            let out = peers::peer_json(
                "oauth_clients.py",
                &[
                    "code-pkce",
                    library,
                    &base,
                    ca.to_str().unwrap(),
                    client_id,
                    secret.unwrap_or("-"),
                    redirect,
                    "email",
                    PROVISION_KEY,
                    &user,
                    SIGNING_KEY,
                    KONG_ISSUER,
                    KONG_AUDIENCE,
                ],
            );
            // The library asked for S256 and a state; the code came back
            // with that state to the registered redirect URI.
            let authorize = out["authorize_url"].as_str().unwrap();
            assert_eq!(
                redirect_param(authorize, "code_challenge_method").as_deref(),
                Some("S256"),
                "{what}: {authorize}"
            );
            let landed = out["redirect"].as_str().unwrap();
            assert!(landed.starts_with(&format!("{redirect}?code=")), "{what}");
            assert_eq!(
                redirect_param(landed, "state"),
                out["state"].as_str().map(String::from)
            );

            let token = &out["token"];
            assert_eq!(token["token_type"], "bearer", "{what}: {out}");
            assert_eq!(token["expires_in"], 3600, "{what}: {out}");
            assert!(token["refresh_token"].is_string(), "{what}: {out}");
            assert_rfc9068(
                &out["jwt"],
                (KONG_ISSUER, "bob", KONG_AUDIENCE, client_id),
                3600,
            );
            let claims = &out["jwt"]["claims"];
            assert_eq!(claims["authenticated_userid"], user.as_str(), "{what}");
            assert_eq!(claims["scope"], "email", "{what}");

            let call = &out["call"];
            assert_eq!(call["status"], 200, "{what}: {call}");
            let seen = &call["body"]["headers"];
            assert_eq!(seen["x-consumer-username"], "bob", "{what}");
            assert_eq!(seen["x-credential-identifier"], client_id, "{what}");
            assert_eq!(seen["x-authenticated-userid"], user.as_str(), "{what}");
            assert_eq!(seen["x-authenticated-scope"], "email", "{what}");

            // The refresh: a new pair that works, the old access token is
            // refused at once.
            let refreshed = &out["refreshed"];
            assert_ne!(refreshed["access_token"], token["access_token"], "{what}");
            assert_ne!(refreshed["refresh_token"], token["refresh_token"], "{what}");
            assert_eq!(out["after_refresh"]["status"], 200, "{what}: {out}");
            assert_eq!(out["old_token_status"], 401, "{what}: {out}");
            assert!(
                out["old_token_www_authenticate"]
                    .as_str()
                    .is_some_and(|h| h.contains("error=\"invalid_token\"")),
                "{what}: {out}"
            );
            pyjwt(
                refreshed["access_token"].as_str().unwrap(),
                SIGNING_KEY,
                KONG_ISSUER,
                KONG_AUDIENCE,
            );
        }
    }
    server.assert_logs_keep(&[PROVISION_KEY, "webapp-secret"]);
}

/// The authorize step of Kong's flow, with the request the oauth2 crate
/// builds (PKCE S256, a random state): the resource owner's application
/// POSTs it with the provision_key, as Kong's page would. The code from the
/// answer's redirect URI (its state checked) and the PKCE verifier.
fn kong_authorize(
    oauth: &BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>,
    http: &Client,
    base: &str,
    redirect: &str,
    user: &str,
) -> (String, PkceCodeVerifier) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = oauth
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut form: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    form.push(("provision_key".into(), PROVISION_KEY.into()));
    form.push(("authenticated_userid".into(), user.into()));
    let resp = http
        .post(format!("{base}/oauth2/authorize"))
        .form(&form)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let body: Value = resp.json().unwrap();
    let landed = body["redirect_uri"].as_str().unwrap();
    assert!(landed.starts_with(&format!("{redirect}?code=")), "{landed}");
    assert_eq!(
        redirect_param(landed, "state").as_deref(),
        Some(csrf.secret().as_str()),
        "{landed}"
    );
    (redirect_param(landed, "code").unwrap(), verifier)
}

#[test]
fn rust_oauth2_authorization_code_with_pkce_on_kong() {
    let (server, pem, _ca) = kong();
    let base = format!("{}/api", server.https_localhost());
    let http = client_trusting(&pem);
    for (client_id, secret, redirect) in [MOBILE, WEBAPP] {
        let what = format!("oauth2 as {client_id}");
        let user = format!("rust-{client_id}");
        let mut oauth = BasicClient::new(ClientId::new(client_id.into()))
            .set_auth_uri(AuthUrl::new(format!("{base}/oauth2/authorize")).unwrap())
            .set_token_uri(TokenUrl::new(format!("{base}/oauth2/token")).unwrap())
            .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap());
        if let Some(secret) = secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret.into()));
        }

        // Another verifier than the challenge's: Kong's invalid_grant.
        let (code, _) = kong_authorize(&oauth, &http, &base, redirect, &user);
        let (_, wrong) = PkceCodeChallenge::new_random_sha256();
        match oauth
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(wrong)
            .request(&http)
        {
            Err(RequestTokenError::ServerResponse(r)) => {
                assert_eq!(r.error().as_ref(), "invalid_grant", "{what}: {r}");
            }
            other => panic!("{what}: a wrong verifier gave {other:?}"),
        }

        let (code, verifier) = kong_authorize(&oauth, &http, &base, redirect, &user);
        let token: BasicTokenResponse = loud(
            &what,
            oauth
                .exchange_code(AuthorizationCode::new(code.clone()))
                .set_pkce_verifier(verifier)
                .request(&http),
        );
        assert_eq!(
            token.expires_in(),
            Some(std::time::Duration::from_secs(3600))
        );
        let access = token.access_token().secret().clone();
        let checked = pyjwt(&access, SIGNING_KEY, KONG_ISSUER, KONG_AUDIENCE);
        assert_rfc9068(
            &checked,
            (KONG_ISSUER, "bob", KONG_AUDIENCE, client_id),
            3600,
        );
        assert_eq!(checked["claims"]["authenticated_userid"], user.as_str());

        let resp = http
            .get(format!("{base}/orders"))
            .bearer_auth(&access)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{what}");
        let echo: Value = resp.json().unwrap();
        assert_eq!(echo["headers"]["x-authenticated-userid"], user.as_str());
        assert_eq!(echo["headers"]["x-credential-identifier"], client_id);

        // The code is single use: the crate reports Kong's error.
        let (_, verifier2) = PkceCodeChallenge::new_random_sha256();
        match oauth
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier2)
            .request(&http)
        {
            Err(RequestTokenError::ServerResponse(r)) => {
                assert_eq!(r.error().as_ref(), "invalid_grant", "{what}");
            }
            other => panic!("{what}: a used code gave {other:?}"),
        }

        let refresh = token.refresh_token().expect("a refresh token").clone();
        let renewed: BasicTokenResponse = loud(
            &format!("{what}: refresh"),
            oauth.exchange_refresh_token(&refresh).request(&http),
        );
        let renewed_access = renewed.access_token().secret();
        assert_ne!(renewed_access, &access);
        for (token, status) in [(&access, 401), (renewed_access, 200)] {
            let resp = http
                .get(format!("{base}/orders"))
                .bearer_auth(token)
                .send()
                .unwrap();
            assert_eq!(resp.status(), status, "{what}");
        }
    }
}
