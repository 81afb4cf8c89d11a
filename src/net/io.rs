//! The one blocking point of every protocol driver: wait for client bytes, a timeout, or the
//! shutdown signal.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// What ended the wait.
#[derive(Debug)]
pub enum ReadOutcome {
    /// This many bytes are in the buffer.
    Data(usize),
    /// The client closed the connection.
    Closed,
    /// Nothing came within the timeout.
    TimedOut,
    /// The daemon is stopping (only when `stoppable`).
    ShuttingDown,
}

/// Reads into `buf`, giving up after `timeout`; when `stoppable`, a shutdown request ends the
/// wait too (sessions in the middle of a transfer pass `false` and finish it).
pub async fn read_or_stop<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
    stoppable: bool,
) -> std::io::Result<ReadOutcome> {
    tokio::select! {
        read = tokio::time::timeout(timeout, stream.read(buf)) => match read {
            Ok(Ok(0)) => Ok(ReadOutcome::Closed),
            Ok(Ok(n)) => Ok(ReadOutcome::Data(n)),
            Ok(Err(err)) => Err(err),
            Err(_elapsed) => Ok(ReadOutcome::TimedOut),
        },
        () = shutting_down(shutdown), if stoppable => Ok(ReadOutcome::ShuttingDown),
    }
}

/// Resolves once shutdown has been requested.
async fn shutting_down(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
