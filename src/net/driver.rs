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
    /// The client's time to send its next command, counted from our last answer.
    turn: ClientTurn,
}

/// The least rate, in bytes per second, at which a client may send a command or a message:
/// every byte received adds 1/500 s to the time it has since our last answer (Postfix's
/// `smtpd_min_data_rate` has the same default). So a client that trickles a byte now and then
/// holds its connection no longer than the timeout, while a large APPEND or DATA at any
/// usable speed is never cut.
pub const MIN_CLIENT_RATE: u64 = 500;

/// Since when the client has been sending its next command, and how much of it came.
///
/// The inactivity timeouts count from our last answer, not from the last read: counted per
/// read, one byte every few seconds kept a connection open for as long as a line or a
/// message may grow (slow-loris; docs/reliability.md).
struct ClientTurn {
    since: Instant,
    bytes: u64,
}

impl ClientTurn {
    fn new() -> ClientTurn {
        ClientTurn {
            since: Instant::now(),
            bytes: 0,
        }
    }

    /// What is left of `timeout`, with the allowance for the bytes already received.
    fn remaining(&self, timeout: Duration) -> Duration {
        let allowance = Duration::from_millis(self.bytes.saturating_mul(1000) / MIN_CLIENT_RATE);
        timeout
            .saturating_add(allowance)
            .saturating_sub(self.since.elapsed())
    }

    fn received(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
    }
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
            turn: ClientTurn::new(),
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
        // An answer went out: the client's turn starts now.
        self.turn = ClientTurn::new();
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

    /// Flushes, then waits for client bytes; gives up when the client has had `timeout` since
    /// our last answer (plus [`MIN_CLIENT_RATE`]'s allowance for what it sent since). A shutdown
    /// ends the wait too when `stoppable` (sessions in the middle of a transfer pass false and
    /// finish it).
    pub async fn read(&mut self, timeout: Duration, stoppable: bool) -> io::Result<Input<'_>> {
        self.read_rechecking(|| timeout, timeout, stoppable).await
    }

    /// Like [`Connection::read`], but the timeout can change while the client is silent: it
    /// is asked of `timeout` again at least every `recheck`, and counted from our last answer
    /// like every timeout here (a session that began before stress gets the stress timeout
    /// too).
    pub async fn read_rechecking(
        &mut self,
        timeout: impl Fn() -> Duration,
        recheck: Duration,
        stoppable: bool,
    ) -> io::Result<Input<'_>> {
        self.flush().await?;
        let outcome = loop {
            let remaining = self.turn.remaining(timeout());
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
            ReadOutcome::Data(n) => {
                self.turn.received(n);
                Input::Data(&self.buf[..n])
            }
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
        let remaining = self.turn.remaining(timeout);
        if remaining.is_zero() {
            return Ok(ReadOutcome::TimedOut);
        }
        let outcome = self.wait_into(space, remaining, stoppable).await?;
        if let ReadOutcome::Data(n) = outcome {
            self.turn.received(n);
        }
        Ok(outcome)
    }

    /// Flushes, then waits at most `wait` for client bytes into `space`, whatever the client's
    /// turn: for a loop that also watches something else and keeps its own time (IMAP IDLE,
    /// whose `DONE` may come after any number of our updates).
    pub async fn poll_into(
        &mut self,
        space: &mut [u8],
        wait: Duration,
        stoppable: bool,
    ) -> io::Result<ReadOutcome> {
        self.flush().await?;
        self.wait_into(space, wait, stoppable).await
    }

    async fn wait_into(
        &mut self,
        space: &mut [u8],
        wait: Duration,
        stoppable: bool,
    ) -> io::Result<ReadOutcome> {
        read_inflating(
            &mut self.stream,
            &mut self.deflate,
            space,
            wait,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_turn_counts_from_the_answer_with_an_allowance_per_byte() {
        let mut turn = ClientTurn::new();
        turn.since -= Duration::from_secs(8);
        assert_eq!(turn.remaining(Duration::from_secs(5)), Duration::ZERO);
        assert!(turn.remaining(Duration::from_secs(10)) <= Duration::from_secs(2));
        // 4 s of allowance: 2,000 bytes at MIN_CLIENT_RATE.
        turn.received(2_000);
        let left = turn.remaining(Duration::from_secs(5));
        assert!(left > Duration::from_millis(900) && left <= Duration::from_secs(1));
        turn.received(usize::MAX);
        assert!(turn.remaining(Duration::MAX) > Duration::from_secs(1));
    }

    /// One byte now and then no longer keeps a connection: the wait gives up once the whole
    /// timeout has passed since the greeting, however the bytes came.
    #[tokio::test]
    async fn a_trickling_client_times_out_like_a_silent_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(address).await.unwrap();
            for _ in 0..40 {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let (tcp, peer) = listener.accept().await.unwrap();
        let (_stop, shutdown) = watch::channel(false);
        let how = Accept {
            tls: None,
            implicit_tls: false,
            handshake_timeout: Duration::from_secs(1),
            read_buffer: 1024,
        };
        let mut conn = Connection::accept(tcp, peer, how, shutdown).await.unwrap();
        conn.send(b"220 hello\r\n");
        let started = Instant::now();
        let timeout = Duration::from_millis(800);
        let mut bytes = 0;
        loop {
            match conn.read(timeout, true).await.unwrap() {
                Input::Data(data) => bytes += data.len(),
                Input::TimedOut => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let waited = started.elapsed();
        assert!(bytes >= 4, "only {bytes} bytes came");
        assert!(waited < Duration::from_secs(2), "cut after {waited:?}");
        // An answer gives the client a new turn.
        conn.send(b"250 ok\r\n");
        assert!(matches!(
            conn.read(timeout, true).await.unwrap(),
            Input::Data(_)
        ));
        client.abort();
    }
}
