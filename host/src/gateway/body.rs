//! Reading a request body, only when a decision asks for it
//! (`Decision::NeedBody`): bounded in size and time. Every other body is
//! never read by the gateway; it streams to the upstream as it arrives.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::StatusCode;
use hyper::header::{self, HeaderMap};

use super::BoxError;
use super::reply::{Response, plain};

/// How long a client may take to send a body the decision waits for.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// At most `max_bytes` of `body`, whole; a longer one (declared or sent) is
/// a 413 that says the bound, a broken one a 400, a slow one a 408.
pub(super) async fn read_bounded<B>(
    headers: &HeaderMap,
    body: B,
    max_bytes: u32,
) -> Result<Bytes, Response>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let max = max_bytes as usize;
    let too_large = || {
        plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body too large: this request is decided on its body, of at most {max} bytes\n"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => {
            tracing::debug!("could not read request body: {e}");
            Err(plain(
                StatusCode::BAD_REQUEST,
                "could not read request body\n",
            ))
        }
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "request body timed out\n",
        )),
    }
}
