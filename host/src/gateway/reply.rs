//! Answers the gateway gives itself: a policy's reply turned into an HTTP
//! response, and the gateway's own short plain-text answers (400, 413, 502,
//! 503, …).

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::{self, HeaderName, HeaderValue};
use warden_engine::Reply;

use super::Body;

/// The gateway's responses.
pub type Response = hyper::Response<Body>;

/// Marks a response Warden made itself (not an upstream's): a gRPC call
/// gets it in gRPC's terms ([`super::grpc`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Own;

/// The HTTP response for a policy reply. A status or header the guest got
/// wrong turns into a 503 rather than a guess.
pub(super) fn policy_reply(reply: Reply) -> Response {
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        tracing::error!(
            status = reply.status,
            "policy replied with an invalid status"
        );
        return unavailable();
    };
    let mut response = hyper::Response::new(Body::full(reply.body));
    *response.status_mut() = status;
    response.extensions_mut().insert(Own);
    for (name, value) in &reply.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                response.headers_mut().append(name, value);
            }
            _ => {
                tracing::error!(header = %name, "policy replied with an invalid header");
                return unavailable();
            }
        }
    }
    response
}

/// A short plain-text response.
pub(super) fn plain(status: StatusCode, text: impl Into<Bytes>) -> Response {
    let mut response = hyper::Response::new(Body::full(text));
    *response.status_mut() = status;
    response.extensions_mut().insert(Own);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 503: the policy could not decide (fail closed), or the gateway cannot
/// carry out what it decided.
pub(super) fn unavailable() -> Response {
    plain(StatusCode::SERVICE_UNAVAILABLE, "service unavailable\n")
}
