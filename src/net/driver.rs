//! One client connection as every protocol driver (SMTP, IMAP, POP3) sees it: the stream,
//! plain or TLS (implicit, or after STARTTLS), a read buffer of a fixed size, the pending
//! output, the shutdown signal and the session's span. The protocols keep their loops (each
//! core speaks differently) but read, write, time out, upgrade and say goodbye through this.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::io::read_or_stop;
pub use super::io::ReadOutcome;
use super::stream::MaybeTls;

/// What a wait for client bytes gave.
#[derive(Debug)]
pub enum Input<'a> {
    /// These bytes (at most the read buffer's size).
    Data(&'a [u8]),
    /// The client closed the connection.
    Closed,
    /// Nothing came within the timeout.
    TimedOut,
    /// The daemon is stopping (only for waits that may be cut).
    ShuttingDown,
}

pub struct Connection {
    stream: MaybeTls,
    peer: SocketAddr,
    buf: Vec<u8>,
    out: Vec<u8>,
    shutdown: watch::Receiver<bool>,
}

/// How a connection starts.
pub struct Accept<'a> {
    pub tls: Option<&'a TlsAcceptor>,
    /// TLS from the first byte (SMTPS, IMAPS, POP3S).
    pub implicit_tls: bool,
    /// How long the implicit TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Bytes read from the socket at a time: the most a session buffers per read.
    pub read_buffer: usize,
}

impl Connection {
    /// The connection of an accepted socket; `None` when an implicit-TLS handshake fails (or
    /// there is no certificate for it): nothing can be said then.
    pub async fn accept(
        tcp: TcpStream,
        peer: SocketAddr,
        how: Accept<'_>,
        shutdown: watch::Receiver<bool>,
    ) -> Option<Connection> {
        let stream =
            MaybeTls::accept(tcp, how.tls, how.implicit_tls, how.handshake_timeout).await?;
        Some(Connection {
            stream,
            peer,
            buf: vec![0u8; how.read_buffer],
            out: Vec::new(),
            shutdown,
        })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// TLS version and cipher suite, for logs and trace headers.
    pub fn tls_info(&self) -> Option<String> {
        self.stream.tls_info()
    }

    /// Queues bytes to send; they go out at the next read, flush or close.
    pub fn send(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes what is queued once it passes `threshold` bytes (a long listing doesn't pile up).
    pub async fn flush_above(&mut self, threshold: usize) -> io::Result<()> {
        if self.out.len() > threshold {
            self.flush().await?;
        }
        Ok(())
    }

    /// Flushes, then waits for client bytes at most `timeout`; a shutdown ends the wait too
    /// when `stoppable` (sessions in the middle of a transfer pass false and finish it).
    pub async fn read(&mut self, timeout: Duration, stoppable: bool) -> io::Result<Input<'_>> {
        self.read_rechecking(|| timeout, timeout, stoppable).await
    }

    /// Like [`Connection::read`], but the timeout can change while the client is silent: it
    /// is asked of `timeout` again at least every `recheck` and counted from the start of the
    /// wait (a session that began before stress gets the stress timeout too).
    pub async fn read_rechecking(
        &mut self,
        timeout: impl Fn() -> Duration,
        recheck: Duration,
        stoppable: bool,
    ) -> io::Result<Input<'_>> {
        self.flush().await?;
        let started = Instant::now();
        let outcome = loop {
            let remaining = timeout().saturating_sub(started.elapsed());
            if remaining.is_zero() {
                break ReadOutcome::TimedOut;
            }
            let wait = remaining.min(recheck);
            match read_or_stop(
                &mut self.stream,
                &mut self.buf,
                wait,
                &mut self.shutdown,
                stoppable,
            )
            .await?
            {
                ReadOutcome::TimedOut => continue,
                other => break other,
            }
        };
        Ok(match outcome {
            ReadOutcome::Data(n) => Input::Data(&self.buf[..n]),
            ReadOutcome::Closed => Input::Closed,
            ReadOutcome::TimedOut => Input::TimedOut,
            ReadOutcome::ShuttingDown => Input::ShuttingDown,
        })
    }

    /// Like [`Connection::read`], into the caller's `space` (a protocol that keeps its own input
    /// buffer, as IMAP does for its input guard); `Ok(n)` bytes arrived.
    pub async fn read_into(
        &mut self,
        space: &mut [u8],
        timeout: Duration,
        stoppable: bool,
    ) -> io::Result<ReadOutcome> {
        self.flush().await?;
        read_or_stop(
            &mut self.stream,
            space,
            timeout,
            &mut self.shutdown,
            stoppable,
        )
        .await
    }

    /// STARTTLS: writes what is queued (the "go ahead" reply) in the clear, then runs the
    /// handshake, bounded by `timeout`.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        self.flush().await?;
        self.stream.upgrade(acceptor, timeout).await
    }

    /// Writes what is queued and closes the connection.
    pub async fn close(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.stream.shutdown().await
    }

    /// Sends a last message (a timeout's or a shutdown's) and closes.
    pub async fn farewell(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.send(bytes);
        self.close().await
    }
}

/// Records the logged-in account on the session's span (declared with `user = Empty`), so
/// every later line of the session carries it.
pub fn record_user(user: &impl std::fmt::Display) {
    tracing::Span::current().record("user", tracing::field::display(user));
}
