//! The token endpoint: RFC 6749 client_credentials, Higress-compatible.
//!
//! A request whose path ends with the scope's `auth_path` is answered here and
//! never forwarded (the decision walk hands it over, see
//! [`token_endpoint`]). Parameters come from the query (`GET`) or a form body
//! (`POST`, `application/x-www-form-urlencoded`; when the host has not read
//! the body yet, the answer is [`Decision::NeedBody`]); the client may
//! authenticate with HTTP Basic instead (RFC 6749 §2.3.1). Every answer —
//! success or error — carries `Cache-Control: no-store` and `Pragma:
//! no-cache`; errors use the RFC 6749 §5.2 JSON shape.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::graph::{Ctx, DecisionGraph};
use crate::model::{ClientSecret, ScopeId};
use crate::token::{self, Claims};
use crate::{Decision, Reply, Request, Services};

/// Largest form body or query accepted on the token endpoint.
pub const MAX_PARAMS_LEN: usize = 16 * 1024;

/// A token request's parameters, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    grant_type: String,
    client_id: String,
    /// `None` when missing (reported as `invalid_client` after the lookup, like Higress).
    client_secret: Option<String>,
    /// The HTTP Basic secret as sent, when form-decoding changed it.
    raw_secret: Option<String>,
    scope: Option<String>,
    /// The client authenticated with HTTP Basic.
    basic: bool,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Unknown client or wrong secret; `basic` when the client used HTTP Basic.
    #[error("invalid_client")]
    InvalidClient { basic: bool },
    #[error("unsupported_grant_type: `{0}`")]
    UnsupportedGrantType(String),
    #[error("method `{0}` not allowed on the token endpoint")]
    MethodNotAllowed(String),
    #[error("server_error: {0}")]
    ServerError(String),
}

impl OAuthError {
    /// The HTTP reply for this error.
    pub fn reply(&self) -> Reply {
        let (status, code, description): (u16, &str, Cow<'_, str>) = match self {
            OAuthError::InvalidRequest(d) => (400, "invalid_request", d.into()),
            OAuthError::InvalidClient { basic } => {
                let status = if *basic { 401 } else { 400 };
                (
                    status,
                    "invalid_client",
                    "client authentication failed".into(),
                )
            }
            OAuthError::UnsupportedGrantType(g) => (
                400,
                "unsupported_grant_type",
                format!(
                    "grant type `{}` is not supported; use `client_credentials`",
                    truncate(g)
                )
                .into(),
            ),
            OAuthError::MethodNotAllowed(_) => (
                405,
                "invalid_request",
                "the token endpoint accepts GET and POST".into(),
            ),
            OAuthError::ServerError(_) => {
                (500, "server_error", "the token could not be issued".into())
            }
        };
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut reply = json_reply(status, &body, self.to_string());
        match self {
            OAuthError::InvalidClient { basic: true } => {
                reply
                    .headers
                    .push(("www-authenticate".into(), "Basic realm=\"token\"".into()));
            }
            OAuthError::MethodNotAllowed(_) => {
                reply.headers.push(("allow".into(), "GET, POST".into()))
            }
            _ => {}
        }
        reply
    }
}

/// The success answer: `{"access_token":…,"expires_in":…,"token_type":"bearer"}`
/// (RFC 6749 §5.1), its members in the order the guest has always sent them.
pub fn token_reply(access_token: &str, expires_in: u64, reason: String) -> Reply {
    /// Serialised straight from borrowed fields: no `serde_json::Value` map
    /// is built and dropped for every token issued.
    #[derive(serde::Serialize)]
    struct Body<'a> {
        access_token: &'a str,
        expires_in: u64,
        token_type: &'static str,
    }
    let body = Body {
        access_token,
        expires_in,
        token_type: "bearer",
    };
    // A struct of a string and a number always serialises.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    json_bytes_reply(200, body, reason)
}

/// Whether `presented` is the client secret `check` (constant time, or the
/// host's hash check); a public client has none to present.
pub(crate) fn secret_matches(
    check: &ClientSecret,
    presented: &str,
    services: &dyn Services,
) -> bool {
    match check {
        ClientSecret::Plain(secret) => secret.matches(presented.as_bytes()),
        ClientSecret::Hashed(hash) => services.verify_secret_hash(hash.phc(), presented.as_bytes()),
        // Only the Kong dialect has public clients.
        ClientSecret::Public => false,
    }
}

/// Whether a client presented its secret: form-decoded (RFC 6749 §2.3.1),
/// else — from an HTTP Basic header whose secret decoding changed — as sent.
/// Python's requests and authlib put the secret in the header without
/// form-encoding it, so a secret holding `+` or `%XX` would otherwise fail
/// with them; accepting both forms serves both kinds of client. Only a secret
/// that differs when decoded is checked twice.
pub(crate) fn presented_matches(
    check: &ClientSecret,
    decoded: &str,
    raw: Option<&str>,
    services: &dyn Services,
) -> bool {
    secret_matches(check, decoded, services)
        || raw.is_some_and(|raw| secret_matches(check, raw, services))
}

/// A JSON reply that no cache keeps (RFC 6749 §5.1).
pub(crate) fn json_reply(status: u16, body: &serde_json::Value, reason: String) -> Reply {
    json_bytes_reply(status, body.to_string().into_bytes(), reason)
}

/// [`json_reply`] with the body already serialised.
fn json_bytes_reply(status: u16, body: Vec<u8>, reason: String) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "no-store".into()),
            ("pragma".into(), "no-cache".into()),
        ],
        body,
        reason,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).flat_map(char::escape_default).collect()
}

/// Answer a request on scope `scope`'s token path: issue a token, refuse
/// with an RFC 6749 §5.2 error, or ask for the body it has not seen yet.
pub(crate) fn token_endpoint<F>(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    services: &dyn Services,
) -> Decision<F> {
    let tr = match parse_request(ctx.req) {
        Ok(tr) => tr,
        Err(Refusal::NeedBody) => {
            return Decision::NeedBody {
                max_bytes: MAX_PARAMS_LEN as u32,
            };
        }
        Err(Refusal::OAuth(e)) => return Decision::Reply(e.reply()),
    };
    Decision::Reply(issue(graph, ctx, scope, services, &tr).unwrap_or_else(|e| e.reply()))
}

/// Authenticate the client of `tr` and sign its token.
fn issue(
    graph: &DecisionGraph,
    ctx: &Ctx<'_>,
    scope: ScopeId,
    services: &dyn Services,
    tr: &TokenRequest,
) -> Result<Reply, OAuthError> {
    let s = graph.scope(scope);
    let invalid = OAuthError::InvalidClient { basic: tr.basic };
    let client = s
        .clients
        .get(tr.client_id.as_str())
        .ok_or_else(|| invalid.clone())?;
    let (consumer, keys) = (&client.consumer, &client.keys);
    let presented = tr.client_secret.as_deref().ok_or_else(|| invalid.clone())?;
    if !presented_matches(&keys.check, presented, tr.raw_secret.as_deref(), services) {
        return Err(invalid);
    }
    let mut jti = [0u8; 16];
    services.random_bytes(&mut jti);
    let now = services.now();
    let name = graph.consumer_name(*consumer);
    let claims = Claims {
        aud: if s.settings.global_credentials {
            "default".into()
        } else {
            ctx.scope_key().into()
        },
        client_id: tr.client_id.clone(),
        exp: now.saturating_add(s.settings.token_ttl),
        iat: now,
        iss: s.settings.issuer.clone(),
        jti: token::uuid_v4(jti),
        nbf: None,
        // Scopes are not configurable yet: a requested scope is ignored
        // (RFC 6749 §3.3), never signed into the token.
        scope: None,
        sub: name.to_string(),
        authenticated_userid: None,
    };
    let token = token::issue(&claims, &keys.signing, services)
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    Ok(token_reply(
        &token,
        s.settings.token_ttl,
        format!("issued a token to consumer `{name}`"),
    ))
}

/// Why a token request was not decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A form body is expected and the host has not read it yet.
    NeedBody,
    /// An error to answer.
    OAuth(OAuthError),
}

impl From<OAuthError> for Refusal {
    fn from(e: OAuthError) -> Self {
        Refusal::OAuth(e)
    }
}

/// Decode a token request from the query (GET) or form body (POST), plus
/// HTTP Basic client authentication.
pub fn parse_request(req: &Request<'_>) -> Result<TokenRequest, Refusal> {
    let raw: &[u8] = match req.method {
        "GET" => req.query.as_bytes(),
        "POST" => {
            let ct = req.header("content-type").unwrap_or("");
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err(OAuthError::InvalidRequest(
                    "a POST to the token endpoint must be `application/x-www-form-urlencoded`"
                        .into(),
                )
                .into());
            }
            req.body.ok_or(Refusal::NeedBody)?
        }
        other => return Err(OAuthError::MethodNotAllowed(truncate(other)).into()),
    };
    if raw.len() > MAX_PARAMS_LEN {
        return Err(
            OAuthError::InvalidRequest("the request parameters are too long".into()).into(),
        );
    }
    let mut params = Params::default();
    for (k, v) in form_urlencoded::parse(raw) {
        params.set(&k, v.into_owned())?;
    }
    let basic = basic_credentials(req)?;
    let grant_type = params
        .grant_type
        .ok_or_else(|| OAuthError::InvalidRequest("missing `grant_type`".into()))?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::UnsupportedGrantType(grant_type).into());
    }
    let raw_secret = basic.as_ref().and_then(|b| b.raw_secret.clone());
    let (client_id, client_secret) = match basic {
        Some(Basic { id, secret, .. }) => {
            if params.client_secret.is_some() || params.client_id.as_ref().is_some_and(|p| *p != id)
            {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method: HTTP Basic or parameters, not both"
                        .into(),
                )
                .into());
            }
            (id, Some(secret))
        }
        None => {
            let id = params
                .client_id
                .ok_or_else(|| OAuthError::InvalidRequest("missing `client_id`".into()))?;
            (id, params.client_secret)
        }
    };
    Ok(TokenRequest {
        grant_type,
        client_id,
        client_secret,
        raw_secret,
        scope: params.scope,
        basic: basic_used(req),
    })
}

#[derive(Default)]
struct Params {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

impl Params {
    fn set(&mut self, key: &str, value: String) -> Result<(), OAuthError> {
        let slot = match key {
            "grant_type" => &mut self.grant_type,
            "client_id" => &mut self.client_id,
            "client_secret" => &mut self.client_secret,
            "scope" => &mut self.scope,
            _ => return Ok(()), // RFC 6749 §3.2: unrecognized parameters are ignored
        };
        if slot.is_some() {
            return Err(OAuthError::InvalidRequest(format!(
                "parameter `{key}` is repeated"
            )));
        }
        *slot = Some(value);
        Ok(())
    }
}

fn basic_used(req: &Request<'_>) -> bool {
    req.header("authorization")
        .and_then(|v| v.get(..6))
        .is_some_and(|s| s.eq_ignore_ascii_case("basic "))
}

/// HTTP Basic client credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Basic {
    pub id: String,
    /// Form-decoded, as RFC 6749 §2.3.1 has it.
    pub secret: String,
    /// As sent, when that differs (see [`presented_matches`]).
    pub raw_secret: Option<String>,
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, if present.
pub(crate) fn basic_credentials(req: &Request<'_>) -> Result<Option<Basic>, OAuthError> {
    if !basic_used(req) {
        return Ok(None);
    }
    let value = req.header("authorization").unwrap_or_default();
    let bad = || OAuthError::InvalidClient { basic: true };
    let decoded = STANDARD.decode(value[6..].trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, raw) = decoded.split_once(':').ok_or_else(bad)?;
    let id = form_decode(id).ok_or_else(bad)?;
    let (secret, raw_secret) = split_secret(raw);
    Ok(Some(Basic {
        id,
        secret: secret.ok_or_else(bad)?,
        raw_secret,
    }))
}

/// A Basic secret, form-decoded (`None` if that is not UTF-8), and as sent
/// when decoding changed it.
pub(crate) fn split_secret(raw: &str) -> (Option<String>, Option<String>) {
    let decoded = form_decode(raw);
    let changed = decoded.as_deref() != Some(raw);
    (decoded, changed.then(|| raw.to_owned()))
}

/// Undo the `application/x-www-form-urlencoded` encoding of one value
/// (RFC 6749 §2.3.1 encodes the Basic id and secret with it): `+` is a
/// space and `%XX` a byte; nothing else is special, `&` and `=` included.
/// `None` when the bytes are not UTF-8.
pub(crate) fn form_decode(s: &str) -> Option<String> {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        method: &'a str,
        query: &'a str,
        headers: &'a [(&'a str, &'a str)],
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            query,
            headers,
            body: Some(body),
            path: "/oauth2/token",
            ..Default::default()
        }
    }

    fn refused(r: &Request<'_>) -> OAuthError {
        match parse_request(r) {
            Err(Refusal::OAuth(e)) => e,
            other => panic!("{r:?}: expected an OAuth error, got {other:?}"),
        }
    }

    #[test]
    fn get_post_and_basic() {
        let q = "grant_type=client_credentials&client_id=a%2Bb&client_secret=s+t";
        let got = parse_request(&req("GET", q, &[], b"")).unwrap();
        assert_eq!(
            (got.client_id.as_str(), got.client_secret.as_deref()),
            ("a+b", Some("s t"))
        );
        let form = [(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let got = parse_request(&req("POST", "", &form, q.as_bytes())).unwrap();
        assert_eq!(got.client_id, "a+b");
        let credentials = format!("basic {}", STANDARD.encode("a%2Bb:s%20t"));
        let basic = [("authorization", credentials.as_str())];
        let got = parse_request(&req("GET", "grant_type=client_credentials", &basic, b"")).unwrap();
        assert_eq!(
            (
                got.client_id.as_str(),
                got.client_secret.as_deref(),
                got.raw_secret.as_deref(),
                got.basic
            ),
            ("a+b", Some("s t"), Some("s%20t"), true)
        );
    }

    /// RFC 6749 §2.3.1: the Basic id and secret are each form-urlencoded;
    /// `&` and `=` in them are characters, not separators.
    #[test]
    fn basic_credentials_are_form_decoded_exactly() {
        for (raw, id, secret) in [
            ("a:abc&anything", "a", "abc&anything"),
            ("a%26b=c:x=y&z=w", "a&b=c", "x=y&z=w"),
            ("id:p%2Bq+r", "id", "p+q r"),
            ("id:%3A%25", "id", ":%"),
            ("id:caf%C3%A9", "id", "café"),
            ("id:a:b", "id", "a:b"),
            ("id:", "id", ""),
        ] {
            let credentials = format!("Basic {}", STANDARD.encode(raw));
            let basic = [("authorization", credentials.as_str())];
            let got =
                parse_request(&req("GET", "grant_type=client_credentials", &basic, b"")).unwrap();
            assert_eq!(
                (got.client_id.as_str(), got.client_secret.as_deref()),
                (id, Some(secret)),
                "{raw}"
            );
        }
        // Not UTF-8 once decoded: the client is not authenticated.
        let credentials = format!("Basic {}", STANDARD.encode("id:%FF"));
        let basic = [("authorization", credentials.as_str())];
        let r = req("GET", "grant_type=client_credentials", &basic, b"");
        assert_eq!(refused(&r), OAuthError::InvalidClient { basic: true });
    }

    /// A Basic secret is tried form-decoded, then as sent (requests and
    /// authlib do not encode it); a parameter secret only as decoded.
    #[test]
    fn a_basic_secret_matches_decoded_or_as_sent() {
        use crate::model::{ClientSecret, Secret};
        let stored = ClientSecret::Plain(Secret::new("a+b%41"));
        let host = crate::FixedServices::at(0);
        for (sent, ok) in [
            ("a%2Bb%2541", true), // RFC 6749 §2.3.1, encoded
            ("a+b%41", true),     // as requests and authlib send it
            ("a b%41", false),
            ("a+bA", false),
            ("a%2Bb%41", false),
        ] {
            let credentials = format!("Basic {}", STANDARD.encode(format!("id:{sent}")));
            let basic = [("authorization", credentials.as_str())];
            let got =
                parse_request(&req("GET", "grant_type=client_credentials", &basic, b"")).unwrap();
            let secret = got.client_secret.as_deref().unwrap();
            let matched = presented_matches(&stored, secret, got.raw_secret.as_deref(), &host);
            assert_eq!(matched, ok, "{sent}");
        }
        // Unchanged by decoding: checked once, as it is.
        let credentials = format!("Basic {}", STANDARD.encode("id:plain"));
        let basic = [("authorization", credentials.as_str())];
        let got = parse_request(&req("GET", "grant_type=client_credentials", &basic, b"")).unwrap();
        assert_eq!(got.raw_secret, None);
    }

    #[test]
    fn a_post_without_its_body_asks_for_it() {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let r = Request {
            body: None,
            ..req("POST", "", &form, b"")
        };
        assert_eq!(parse_request(&r), Err(Refusal::NeedBody));
        // What needs no body is answered without it.
        let json = [("content-type", "application/json")];
        let r = Request {
            body: None,
            ..req("POST", "", &json, b"")
        };
        assert!(matches!(refused(&r), OAuthError::InvalidRequest(_)));
    }

    #[test]
    fn errors() {
        let json = [("content-type", "application/json")];
        let cases: Vec<(Request<'_>, u16, &str)> = vec![
            (req("GET", "", &[], b""), 400, "invalid_request"),
            (
                req("GET", "grant_type=password&client_id=a", &[], b""),
                400,
                "unsupported_grant_type",
            ),
            (
                req("GET", "grant_type=client_credentials", &[], b""),
                400,
                "invalid_request",
            ),
            (
                req(
                    "GET",
                    "grant_type=client_credentials&client_id=a&client_id=b",
                    &[],
                    b"",
                ),
                400,
                "invalid_request",
            ),
            (
                req("POST", "", &json, b"grant_type=client_credentials"),
                400,
                "invalid_request",
            ),
            (req("PUT", "", &[], b""), 405, "invalid_request"),
        ];
        for (r, status, code) in cases {
            let reply = refused(&r).reply();
            assert_eq!(reply.status, status, "{r:?}");
            let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(body["error"], code);
            assert_eq!(reply.header("cache-control"), Some("no-store"));
        }
        let reply = OAuthError::InvalidClient { basic: true }.reply();
        assert_eq!(
            (reply.status, reply.header("www-authenticate")),
            (401, Some("Basic realm=\"token\""))
        );
    }
}
