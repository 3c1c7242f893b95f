//! The token endpoint: RFC 6749 client_credentials, Higress-compatible.
//!
//! A request whose path ends with the scope's `auth_path` is answered here and
//! never forwarded. Parameters come from the query (`GET`) or a form body
//! (`POST`, `application/x-www-form-urlencoded`); the client may authenticate
//! with HTTP Basic instead (RFC 6749 §2.3.1). Every answer — success or error —
//! carries `Cache-Control: no-store` and `Pragma: no-cache`; errors use the
//! RFC 6749 §5.2 JSON shape.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Reply, Request};

/// Largest form body or query accepted on the token endpoint.
pub const MAX_PARAMS_LEN: usize = 16 * 1024;

/// A token request's parameters, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: String,
    pub client_id: String,
    /// `None` when missing (reported as `invalid_client` after the lookup, like Higress).
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    /// The client authenticated with HTTP Basic.
    pub basic: bool,
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

/// The success answer: `{"token_type":"bearer","access_token":…,"expires_in":…}`.
pub fn token_reply(access_token: &str, expires_in: u64, reason: String) -> Reply {
    let body = serde_json::json!({
        "token_type": "bearer",
        "access_token": access_token,
        "expires_in": expires_in,
    });
    json_reply(200, &body, reason)
}

fn json_reply(status: u16, body: &serde_json::Value, reason: String) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "no-store".into()),
            ("pragma".into(), "no-cache".into()),
        ],
        body: body.to_string().into_bytes(),
        reason,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(40).flat_map(char::escape_default).collect()
}

/// Decode a token request from the query (GET) or form body (POST), plus
/// HTTP Basic client authentication.
pub fn parse_request(req: &Request<'_>) -> Result<TokenRequest, OAuthError> {
    let raw: &[u8] = match req.method {
        "GET" => req.query.as_bytes(),
        "POST" => {
            let ct = req.header("content-type").unwrap_or("");
            let media = ct.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
                return Err(OAuthError::InvalidRequest(
                    "a POST to the token endpoint must be `application/x-www-form-urlencoded`"
                        .into(),
                ));
            }
            req.body
        }
        other => return Err(OAuthError::MethodNotAllowed(truncate(other))),
    };
    if raw.len() > MAX_PARAMS_LEN {
        return Err(OAuthError::InvalidRequest(
            "the request parameters are too long".into(),
        ));
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
        return Err(OAuthError::UnsupportedGrantType(grant_type));
    }
    let (client_id, client_secret) = match basic {
        Some((id, secret)) => {
            if params.client_secret.is_some() || params.client_id.as_ref().is_some_and(|p| *p != id)
            {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method: HTTP Basic or parameters, not both"
                        .into(),
                ));
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

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, if present.
fn basic_credentials(req: &Request<'_>) -> Result<Option<(String, String)>, OAuthError> {
    if !basic_used(req) {
        return Ok(None);
    }
    let value = req.header("authorization").unwrap_or_default();
    let bad = || OAuthError::InvalidClient { basic: true };
    let decoded = STANDARD.decode(value[6..].trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
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
            body,
            path: "/oauth2/token",
            ..Default::default()
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
                got.basic
            ),
            ("a+b", Some("s t"), true)
        );
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
            let reply = parse_request(&r).unwrap_err().reply();
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
