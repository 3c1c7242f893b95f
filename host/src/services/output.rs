//! What a guest says when it fails: the tail of its stderr and the message
//! it reports through `guest-panicked`, kept so that a trap is logged with
//! its cause.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The last bytes a guest wrote to stderr or reported through
/// `guest-panicked` (a panic message, before the trap), kept so that a trap
/// can be reported with its cause. Writes never
/// fail and never grow it past its capacity: older bytes are dropped.
#[derive(Clone, Default)]
pub struct GuestOutput(Arc<Mutex<Vec<u8>>>);

/// How much of a guest's stderr is kept.
const GUEST_OUTPUT_TAIL: usize = 2048;

impl GuestOutput {
    pub(super) fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(GUEST_OUTPUT_TAIL)..];
        let overflow = (buf.len() + bytes.len()).saturating_sub(GUEST_OUTPUT_TAIL);
        buf.drain(..overflow);
        buf.extend_from_slice(bytes);
    }

    /// What was written, as one line: the panic message without Rust's
    /// backtrace hint, truncated.
    pub fn summary(&self) -> Option<String> {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = String::from_utf8_lossy(&buf);
        let line = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect::<Vec<_>>()
            .join(" ");
        (!line.is_empty()).then(|| line.chars().take(300).collect())
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(GUEST_OUTPUT_TAIL)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_output_keeps_a_bounded_tail() {
        let out = GuestOutput::default();
        assert_eq!(out.summary(), None);
        out.push(b"\nthread '<unnamed>' panicked at src/x.rs:1:2:\nboom\nnote: run with `RUST_BACKTRACE=1` to see\n");
        assert_eq!(
            out.summary().unwrap(),
            "thread '<unnamed>' panicked at src/x.rs:1:2: boom"
        );
        out.push(&vec![b'a'; 5000]);
        assert_eq!(out.0.lock().unwrap().len(), GUEST_OUTPUT_TAIL);
        assert_eq!(out.summary().unwrap().len(), 300);
    }
}
