//! A connection that starts in plain text and may switch to TLS in place (STARTTLS), or starts
//! in TLS (implicit TLS ports); the server side of our daemons and the client side of the queue.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only during an upgrade; every I/O on it fails.
    Upgrading,
}

impl MaybeTls {
    /// A new connection: plain, or TLS from the first byte when `implicit` (SMTPS, POP3S,
    /// IMAPS). None when it can't go on: an implicit-TLS port without a certificate (nothing to
    /// say), or a failed handshake (logged).
    pub async fn accept(
        tcp: TcpStream,
        tls: Option<&TlsAcceptor>,
        implicit: bool,
        timeout: Duration,
    ) -> Option<MaybeTls> {
        let mut stream = MaybeTls::Plain(tcp);
        if implicit {
            let acceptor = tls?;
            if let Err(err) = stream.upgrade(acceptor, timeout).await {
                tracing::info!("TLS handshake failed: {err}");
                return None;
            }
        }
        Some(stream)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// TLS version and cipher suite, for logs and the Received header.
    pub fn tls_info(&self) -> Option<String> {
        let MaybeTls::Tls(stream) = self else {
            return None;
        };
        let (_, connection) = stream.get_ref();
        Some(format!(
            "{} {}",
            connection
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            connection
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default()
        ))
    }

    /// Runs the server side of a TLS handshake on a plain connection, cut after `timeout`.
    pub async fn upgrade(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        let MaybeTls::Plain(tcp) = std::mem::replace(self, MaybeTls::Upgrading) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = tokio::time::timeout(timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| handshake_timeout())??;
        *self = MaybeTls::Tls(Box::new(TlsStream::Server(tls)));
        Ok(())
    }

    /// Runs the client side of a TLS handshake with `name` (bounded in time); a timeout is an
    /// error of kind `TimedOut`.
    pub async fn connect_tls(
        &mut self,
        connector: &TlsConnector,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> io::Result<()> {
        let MaybeTls::Plain(tcp) = std::mem::replace(self, MaybeTls::Upgrading) else {
            return Err(io::Error::other("TLS is already active"));
        };
        let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| handshake_timeout())??;
        *self = MaybeTls::Tls(Box::new(TlsStream::Client(tls)));
        Ok(())
    }
}

fn handshake_timeout() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
}

fn upgrading() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost during TLS upgrade",
    )
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_flush(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            MaybeTls::Upgrading => Poll::Ready(Ok(())),
        }
    }
}
