//! Warden's own answers to gRPC calls, in gRPC's terms.
//!
//! A gRPC client reads the outcome of a call from `grpc-status`, not from the
//! HTTP status; a 401 with a JSON body is, to it, a broken server. So when a
//! call (`content-type: application/grpc…`) is answered by Warden itself —
//! the policy denies it, or the gateway cannot decide or reach the upstream —
//! the answer becomes a *Trailers-Only* response (gRPC's PROTOCOL-HTTP2):
//! HTTP 200, `content-type: application/grpc`, `grpc-status` and a
//! percent-encoded `grpc-message`, no body, the policy's other headers kept
//! (`WWW-Authenticate`). That is Envoy's behaviour for its local replies.
//! Kong sends the HTTP status itself (401) with the gRPC headers, which
//! clients that follow the spec report as "unexpected HTTP status"; Warden
//! follows the spec there, and takes Kong's table from HTTP status to
//! gRPC code (`kong/pdk/response.lua`), which keeps 429 and 404 apart.
//! The message is the reply's `error_description` (or `message`, `error`,
//! or its text), so a client sees why; never a token or secret — replies
//! carry none.
//!
//! Answers from the upstream are a gRPC server's own and pass unchanged.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderValue};

use super::Body;
use super::reply::{Own, Response};

/// Whether a request is a gRPC call.
pub(super) fn is_call(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..16))
        .is_some_and(|v| v.eq_ignore_ascii_case("application/grpc"))
}

/// `response` as gRPC clients expect it, if Warden made it; an upstream's
/// response is returned as it is.
pub(super) async fn answer(response: Response) -> Response {
    if response.extensions().get::<Own>().is_none() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Warden's own bodies are whole, in memory.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let code = code(parts.status.as_u16());
    let message = message(&body).unwrap_or_else(|| default_message(code).to_owned());
    parts.status = hyper::StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    parts.headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(&message)) {
        parts.headers.insert("grpc-message", value);
    }
    hyper::Response::from_parts(parts, Body::full(Bytes::new()))
}

/// The gRPC status code for an HTTP status Warden answered with (Kong's
/// `HTTP_TO_GRPC_STATUS`, and its fallbacks by class).
fn code(status: u16) -> u16 {
    let exact = match status {
        200 => Some(2), // Warden answered a call itself: UNKNOWN to the caller
        400 => Some(3),
        401 => Some(16),
        403 => Some(7),
        404 => Some(5),
        409 => Some(6),
        429 => Some(8),
        499 => Some(1),
        500 => Some(13),
        501 => Some(12),
        502..=504 => Some(14),
        _ => None,
    };
    exact.unwrap_or(match status / 100 {
        5 => 13,
        4 => 3,
        _ => 2,
    })
}

/// The name of a code, for an answer without a body to quote.
fn default_message(code: u16) -> &'static str {
    match code {
        1 => "Cancelled",
        3 => "InvalidArgument",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

/// What a reply body says: a JSON object's `error_description`, `message`
/// or `error`, else its text (one line, at most 512 bytes).
fn message(body: &[u8]) -> Option<String> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        return ["error_description", "message", "error"]
            .iter()
            .find_map(|k| map.get(*k).and_then(|v| v.as_str()))
            .map(str::to_owned);
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    (!text.is_empty() && text.len() <= 512 && !text.contains('\n')).then(|| text.to_owned())
}

/// gRPC's percent-encoding of `grpc-message`: bytes outside 0x20–0x7E, and
/// `%`, as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_told_by_content_type() {
        let mut h = HeaderMap::new();
        assert!(!is_call(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert!(is_call(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(!is_call(&h));
    }

    #[test]
    fn codes_and_messages() {
        assert_eq!(
            (code(401), code(403), code(429), code(503), code(418)),
            (16, 7, 8, 14, 3)
        );
        let kong = br#"{"error":"invalid_token","error_description":"The access token is invalid or has expired"}"#;
        assert_eq!(
            message(kong).as_deref(),
            Some("The access token is invalid or has expired")
        );
        assert_eq!(
            message(b"service unavailable\n").as_deref(),
            Some("service unavailable")
        );
        assert_eq!(message(b""), None);
        assert_eq!(
            percent_encode("50% off: caf\u{e9}\n"),
            "50%25 off: caf%C3%A9%0A"
        );
    }

    #[tokio::test]
    async fn own_answers_become_trailers_only() {
        let mut r = super::super::reply::plain(hyper::StatusCode::UNAUTHORIZED, "Jwt is missing\n");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        let r = answer(r).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()["grpc-message"], "Jwt is missing");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert!(r.into_body().collect().await.unwrap().to_bytes().is_empty());
        // An upstream's answer is its own.
        let mut upstream = hyper::Response::new(Body::full("x"));
        *upstream.status_mut() = hyper::StatusCode::UNAUTHORIZED;
        let upstream = answer(upstream).await;
        assert_eq!(upstream.status(), 401);
        assert!(!upstream.headers().contains_key("grpc-status"));
    }
}
