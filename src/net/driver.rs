//! One client connection as every protocol driver (SMTP, IMAP, POP3) sees it: the stream,
//! plain or TLS (implicit, or after STARTTLS), a read buffer of a fixed size, the pending
//! output, the shutdown signal and the session's span. The protocols keep their loops (each
//! core speaks differently) but read, write, time out, upgrade, compress (IMAP's COMPRESS) and
//! say goodbye through this.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::deflate::Deflate;
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
    /// COMPRESS=DEFLATE is on: what goes out is deflated, what comes in inflated.
    deflate: Option<Compressed>,
}

/// Compressed bytes read at a time when COMPRESS is on.
const DEFLATE_READ: usize = 16 * 1024;

/// The compression layer and its two buffers.
struct Compressed {
    deflate: Deflate,
    /// Compressed bytes read from the socket, a read buffer's worth.
    raw: Vec<u8>,
    /// Deflated output on its way.
    wire: Vec<u8>,
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
            deflate: None,
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
        if self.out.is_empty() {
            return Ok(());
        }
        match &mut self.deflate {
            None => self.stream.write_all(&self.out).await?,
            Some(compressed) => {
                compressed.wire.clear();
                compressed
                    .deflate
                    .deflate(&self.out, &mut compressed.wire)?;
                self.stream.write_all(&compressed.wire).await?;
            }
        }
        self.stream.flush().await?;
        self.out.clear();
        Ok(())
    }

    /// COMPRESS=DEFLATE from here on: writes what is queued (the OK) uncompressed, then
    /// compresses both ways. `already_read` is what the client sent after the command and was
    /// read with it: compressed data (RFC 4978 §3: the client compresses right after it).
    pub async fn start_deflate(&mut self, already_read: &[u8]) -> io::Result<()> {
        self.flush().await?;
        self.deflate = Some(Compressed {
            deflate: Deflate::new(already_read),
            // (A protocol that reads into its own buffer, as IMAP does, may keep none here.)
            raw: vec![0u8; self.buf.len().max(DEFLATE_READ)],
            wire: Vec::new(),
        });
        Ok(())
    }

    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
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
            match read_inflating(
                &mut self.stream,
                &mut self.deflate,
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
        read_inflating(
            &mut self.stream,
            &mut self.deflate,
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

/// Reads client bytes into `space`, through the inflater when COMPRESS is on: compressed
/// bytes that give nothing yet (half a block) are kept and the wait goes on, within `timeout`.
async fn read_inflating(
    stream: &mut MaybeTls,
    deflate: &mut Option<Compressed>,
    space: &mut [u8],
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
    stoppable: bool,
) -> io::Result<ReadOutcome> {
    let Some(compressed) = deflate else {
        return read_or_stop(stream, space, timeout, shutdown, stoppable).await;
    };
    let started = Instant::now();
    loop {
        let made = compressed.deflate.inflate(space)?;
        if made > 0 {
            return Ok(ReadOutcome::Data(made));
        }
        let remaining = timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Ok(ReadOutcome::TimedOut);
        }
        match read_or_stop(stream, &mut compressed.raw, remaining, shutdown, stoppable).await? {
            ReadOutcome::Data(n) => compressed.deflate.take_input(&compressed.raw[..n]),
            other => return Ok(other),
        }
    }
}

/// Records the logged-in account on the session's span (declared with `user = Empty`), so
/// every later line of the session carries it.
pub fn record_user(user: &impl std::fmt::Display) {
    tracing::Span::current().record("user", tracing::field::display(user));
}
