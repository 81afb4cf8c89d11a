//! What can go wrong in an IMAP command, in four kinds, each with its tagged response and log
//! level (STYLE.md §3): the client's doing (`User`: NO with its code), a command that could
//! not be understood (`Syntax`: BAD), our own failure (`Server`: `NO [SERVERBUG] … failed` for
//! the client, the cause in a warning line) and the connection (`Io`).

use std::fmt;

use imap_codec::imap_types::response::Code;
use tracing::{info, warn, Level};

use super::response::other;
use super::state::Done;
use crate::store::space::is_out_of_space;

#[derive(Debug)]
pub enum ImapError {
    User {
        code: Option<Code<'static>>,
        text: String,
    },
    Syntax(String),
    Server {
        /// What was being done ("APPEND", "opening the mailbox").
        context: String,
        cause: String,
    },
    Io(std::io::Error),
}

impl ImapError {
    /// Our failure at `context`, `cause` kept for the log.
    pub fn server(context: &str, cause: impl fmt::Display) -> ImapError {
        ImapError::Server {
            context: context.to_string(),
            cause: cause.to_string(),
        }
    }

    pub fn level(&self) -> Level {
        match self {
            ImapError::Server { .. } => Level::WARN,
            _ => Level::INFO,
        }
    }

    /// The log line of this error, at its level.
    pub fn log(&self) {
        match self {
            ImapError::Server { context, cause } => warn!("{context}: {cause}"),
            ImapError::User { text, .. } => info!("refused: {text}"),
            ImapError::Syntax(text) => info!("bad command: {text}"),
            ImapError::Io(err) => info!("connection failed: {err}"),
        }
    }

    /// The tagged completion for the client (a server failure is logged here, once).
    pub(in crate::imap) fn into_done(self) -> Done {
        match self {
            ImapError::User {
                code: Some(code),
                text,
            } => Done::no_code(code, text),
            ImapError::User { code: None, text } => Done::no(text),
            ImapError::Syntax(text) => Done::bad(text),
            err @ ImapError::Server { .. } => {
                err.log();
                let ImapError::Server { context, .. } = err else {
                    unreachable!("matched above")
                };
                Done::no_code(other("SERVERBUG"), format!("{context} failed"))
            }
            ImapError::Io(err) => {
                info!("connection failed: {err}");
                Done::no_code(other("SERVERBUG"), "I/O failed")
            }
        }
    }
}

impl fmt::Display for ImapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImapError::User { text, .. } | ImapError::Syntax(text) => write!(f, "{text}"),
            ImapError::Server { context, cause } => write!(f, "{context}: {cause}"),
            ImapError::Io(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ImapError {}

/// A store failure at `context`: logged with its cause, the client learns only that it failed.
pub(in crate::imap) fn server_error(context: &str, cause: impl fmt::Display) -> Done {
    ImapError::server(context, cause).into_done()
}

/// A store failure at `context` that may be a full disk (or file system quota): then
/// `NO [OVERQUOTA]`, which tells the client that there is no room rather than a fault, as
/// Dovecot answers for `ENOSPC` and `EDQUOT` (RFC 5530 names it for quota; nothing was kept,
/// the client may try again later). Any other failure is [`server_error`]'s.
pub(in crate::imap) fn store_error(context: &str, err: &std::io::Error) -> Done {
    if !is_out_of_space(err) {
        return server_error(context, err);
    }
    warn!("{context}: {err}");
    Done::no_code(
        other("OVERQUOTA"),
        "Not enough disk space, please try again later",
    )
}

/// Runs blocking store work off the async threads; a panic or a cancelled task is a server
/// failure at `context` like the work's own error.
pub async fn blocking<T, E>(
    context: &str,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ImapError>
where
    T: Send + 'static,
    E: fmt::Display + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(ImapError::server(context, err)),
        Err(err) => Err(ImapError::server(context, err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::response::Kind;

    #[test]
    fn a_server_failure_tells_the_client_only_what_failed() {
        let done = ImapError::server("APPEND", "No space left on device").into_done();
        assert_eq!(done.kind, Kind::No);
        assert_eq!(done.text, "APPEND failed");
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let done = store_error("APPEND", &full);
        assert_eq!(done.kind, Kind::No);
        assert!(done.text.contains("disk space"), "{}", done.text);
        assert_eq!(
            store_error("APPEND", &std::io::Error::other("x")).text,
            "APPEND failed"
        );
        let done = ImapError::Syntax("Empty message".into()).into_done();
        assert_eq!(done.kind, Kind::Bad);
        assert_eq!(ImapError::server("x", "y").level(), Level::WARN);
    }
}
