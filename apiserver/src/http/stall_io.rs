//! A connection's byte stream with a write deadline: a write (or flush) that makes no progress
//! for the stall timeout fails with `TimedOut`, and the HTTP layer then closes the connection.
//! That is how a client that stops reading (its responses, or a watch it opened) is ended:
//! nothing it does not read piles up in the server past the send buffers, and it cannot hold
//! a connection open forever by sending nothing and reading nothing.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner` with a deadline on writes that make no progress.
pub struct StallGuardedIo<S> {
    inner: S,
    stall_timeout: Duration,
    /// Armed while a write waits; disarmed by any progress.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Called once when the deadline closes the connection.
    on_stall: Option<Box<dyn FnOnce() + Send>>,
}

impl<S> StallGuardedIo<S> {
    /// Guards `inner`: a write pending for `stall_timeout` fails; `on_stall` is told.
    pub fn new(inner: S, stall_timeout: Duration, on_stall: Box<dyn FnOnce() + Send>) -> Self {
        Self {
            inner,
            stall_timeout,
            deadline: None,
            on_stall: Some(on_stall),
        }
    }

    /// After a pending write: arms the deadline if it is not armed, and fails once it passed.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let timeout = self.stall_timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                if let Some(tell) = self.on_stall.take() {
                    tell();
                }
                Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client did not read for the write stall timeout",
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match result {
            Poll::Ready(r) => {
                self.deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.pending(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.guard(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_reading_fails_the_write_after_the_timeout() {
        // A 64-byte pipe whose other end is never read.
        let (client, _server_end) = tokio::io::duplex(64);
        let told = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&told);
        let mut io = StallGuardedIo::new(
            client,
            Duration::from_secs(5),
            Box::new(move || flag.store(true, Ordering::SeqCst)),
        );
        let started = Instant::now();
        let err = io.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(told.load(Ordering::SeqCst));
        // Paused time: exactly the timeout elapsed, no more.
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_deadline() {
        let (client, mut server_end) = tokio::io::duplex(64);
        let mut io = StallGuardedIo::new(client, Duration::from_secs(5), Box::new(|| {}));
        // The reader drains 64 bytes every 4 s: slower than the writer, never stalled 5 s.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut total = 0;
            while total < 1024 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                total += tokio::io::AsyncReadExt::read(&mut server_end, &mut buf)
                    .await
                    .unwrap();
            }
        });
        io.write_all(&[0u8; 1024]).await.unwrap();
        reader.await.unwrap();
    }
}
