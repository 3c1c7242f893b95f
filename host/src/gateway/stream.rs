//! The gateway's one body type, both ways: a client's request body
//! streaming upstream, an upstream's response streaming back, or one of
//! Warden's own answers.
//!
//! An enum rather than one boxed trait object: the bodies of a forwarded
//! request and of its pooled HTTP/1.1 response, the hot path, cost no
//! allocation; only the rare kinds (h2c responses, a refused upgrade) are
//! boxed.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};

use super::BoxError;
use super::pool::PooledBody;

/// A body the gateway receives, forwards or answers with.
pub struct Body(Kind);

enum Kind {
    /// A client's request body, as hyper reads it off the connection.
    Incoming(Incoming),
    /// An HTTP/1.1 upstream's response; its connection goes back to the
    /// pool when it ends.
    Pooled(PooledBody),
    /// A whole body: Warden's own answers, a body read for a decision.
    Full(Full<Bytes>),
    /// Any other body, boxed.
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// Any other body (boxed: off the hot path).
    pub fn boxed<B>(body: B) -> Body
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Body(Kind::Boxed(body.map_err(Into::into).boxed_unsync()))
    }

    /// A whole body.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body(Kind::Full(Full::new(bytes.into())))
    }

    /// A pooled upstream connection's response.
    pub(super) fn pooled(body: PooledBody) -> Body {
        Body(Kind::Pooled(body))
    }
}

impl From<Incoming> for Body {
    fn from(body: Incoming) -> Self {
        Body(Kind::Incoming(body))
    }
}

impl From<Full<Bytes>> for Body {
    fn from(body: Full<Bytes>) -> Self {
        Body(Kind::Full(body))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Kind::Incoming(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Kind::Pooled(b) => Pin::new(b).poll_frame(cx),
            Kind::Full(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Kind::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Incoming(b) => b.is_end_stream(),
            Kind::Pooled(b) => b.is_end_stream(),
            Kind::Full(b) => b.is_end_stream(),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Incoming(b) => b.size_hint(),
            Kind::Pooled(b) => b.size_hint(),
            Kind::Full(b) => b.size_hint(),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Kind::Incoming(_) => "Body(incoming)",
            Kind::Pooled(_) => "Body(pooled)",
            Kind::Full(_) => "Body(full)",
            Kind::Boxed(_) => "Body(boxed)",
        })
    }
}
