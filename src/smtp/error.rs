//! What can go wrong in an SMTP session, in four kinds, each with its reply and its log level
//! (STYLE.md §3): the client's doing (`User`), a malformed command (`Syntax`), our own failure
//! (`Server`: the client gets a generic temporary reply with the message id, the log gets the
//! cause) and the connection (`Io`).

use std::fmt;

use tracing::{info, warn, Level};

use super::reply::Reply;

#[derive(Debug)]
pub enum SmtpError {
    /// Refused for what the client asked: bad sequence, an unknown user, relaying, a policy
    /// verdict, a size over the limit.
    User(Reply),
    /// The command could not be understood.
    Syntax(Reply),
    /// We could not do it (store, queue): a 4xx reply; the cause is for the log only.
    Server { reply: Reply, cause: String },
    /// Reading or writing the connection failed.
    Io(std::io::Error),
}

impl SmtpError {
    pub fn user(code: u16, enhanced: [u8; 3], text: impl Into<String>) -> SmtpError {
        SmtpError::User(Reply::new(code, enhanced, text))
    }

    pub fn syntax(code: u16, enhanced: [u8; 3], text: impl Into<String>) -> SmtpError {
        SmtpError::Syntax(Reply::new(code, enhanced, text))
    }

    /// What the client is told (nothing for a broken connection).
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SmtpError::User(reply) | SmtpError::Syntax(reply) => Some(reply),
            SmtpError::Server { reply, .. } => Some(reply),
            SmtpError::Io(_) => None,
        }
    }

    pub fn reply_mut(&mut self) -> Option<&mut Reply> {
        match self {
            SmtpError::User(reply) | SmtpError::Syntax(reply) => Some(reply),
            SmtpError::Server { reply, .. } => Some(reply),
            SmtpError::Io(_) => None,
        }
    }

    /// How loud the log line is: our failures are warnings; what clients do is information
    /// (one line per refusal, with the client address in the span, for fail2ban).
    pub fn level(&self) -> Level {
        match self {
            SmtpError::Server { .. } => Level::WARN,
            SmtpError::User(_) | SmtpError::Syntax(_) | SmtpError::Io(_) => Level::INFO,
        }
    }

    /// The log line of this error, at its level.
    pub fn log(&self) {
        match self {
            SmtpError::Server { reply, cause } => {
                warn!(code = reply.code, "failed: {cause}");
            }
            SmtpError::User(reply) => {
                info!(code = reply.code, "refused: {}", reply.lines.join(" / "));
            }
            SmtpError::Syntax(reply) => {
                info!(
                    code = reply.code,
                    "bad command: {}",
                    reply.lines.join(" / ")
                );
            }
            SmtpError::Io(err) => info!("connection failed: {err}"),
        }
    }
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpError::User(reply) | SmtpError::Syntax(reply) => {
                write!(f, "{} {}", reply.code, reply.lines.join(" / "))
            }
            SmtpError::Server { cause, .. } => write!(f, "{cause}"),
            SmtpError::Io(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for SmtpError {}

impl From<std::io::Error> for SmtpError {
    fn from(err: std::io::Error) -> SmtpError {
        SmtpError::Io(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_reply_and_level() {
        let user = SmtpError::user(550, [5, 1, 1], "no such user");
        assert_eq!(user.reply().map(|r| r.code), Some(550));
        assert_eq!(user.level(), Level::INFO);
        let server = SmtpError::Server {
            reply: Reply::new(451, [4, 3, 0], "try again (ID)"),
            cause: "disk full".into(),
        };
        assert_eq!(server.level(), Level::WARN);
        assert_eq!(
            server.to_string(),
            "disk full",
            "the cause is kept for the log"
        );
        assert!(SmtpError::Io(std::io::Error::other("reset"))
            .reply()
            .is_none());
    }
}
