//! What can go wrong in a POP3 session, in four kinds, each with its response and log level
//! (STYLE.md §3): the client's doing (`User`), a malformed command (`Syntax`), our own failure
//! (`Server`: `-ERR [SYS/TEMP]` with a generic text, the cause kept for the log) and the
//! connection (`Io`).

use std::fmt;

use tracing::{info, warn, Level};

use super::response::{Code, Response};

#[derive(Debug)]
pub enum Pop3Error {
    /// Refused for what the client asked (wrong state, no such message, a failed login…).
    User(Response),
    /// The command could not be understood.
    Syntax(Response),
    /// We could not do it (the store): a temporary `-ERR`; the cause is for the log only.
    Server { response: Response, cause: String },
    /// Reading or writing the connection failed.
    Io(std::io::Error),
}

impl Pop3Error {
    pub fn user(text: impl Into<String>) -> Pop3Error {
        Pop3Error::User(Response::err(text))
    }

    pub fn user_code(code: Code, text: impl Into<String>) -> Pop3Error {
        Pop3Error::User(Response::err_code(code, text))
    }

    pub fn syntax(text: impl Into<String>) -> Pop3Error {
        Pop3Error::Syntax(Response::err(text))
    }

    /// Our failure: the client reads `text` (with `[SYS/TEMP]`), the log `cause`.
    pub fn server(text: impl Into<String>, cause: impl fmt::Display) -> Pop3Error {
        Pop3Error::Server {
            response: Response::err_code(Code::SysTemp, text),
            cause: cause.to_string(),
        }
    }

    /// What the client is told (nothing for a broken connection).
    pub fn response(&self) -> Option<&Response> {
        match self {
            Pop3Error::User(response) | Pop3Error::Syntax(response) => Some(response),
            Pop3Error::Server { response, .. } => Some(response),
            Pop3Error::Io(_) => None,
        }
    }

    pub fn level(&self) -> Level {
        match self {
            Pop3Error::Server { .. } => Level::WARN,
            Pop3Error::User(_) | Pop3Error::Syntax(_) | Pop3Error::Io(_) => Level::INFO,
        }
    }

    /// The log line of this error, at its level.
    pub fn log(&self) {
        let text = |response: &Response| {
            String::from_utf8_lossy(&response.to_wire())
                .trim_end()
                .to_string()
        };
        match self {
            Pop3Error::Server { response, cause } => warn!("{}: {cause}", text(response)),
            Pop3Error::User(response) => info!("refused: {}", text(response)),
            Pop3Error::Syntax(response) => info!("bad command: {}", text(response)),
            Pop3Error::Io(err) => info!("connection failed: {err}"),
        }
    }
}

impl fmt::Display for Pop3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pop3Error::User(response) | Pop3Error::Syntax(response) => {
                write!(
                    f,
                    "{}",
                    String::from_utf8_lossy(&response.to_wire()).trim_end()
                )
            }
            Pop3Error::Server { cause, .. } => write!(f, "{cause}"),
            Pop3Error::Io(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for Pop3Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_keeps_its_cause_out_of_the_response() {
        let err = Pop3Error::server("The message cannot be read now", "EIO on cur/123");
        let wire = String::from_utf8(err.response().unwrap().to_wire()).unwrap();
        assert_eq!(wire, "-ERR [SYS/TEMP] The message cannot be read now\r\n");
        assert_eq!(err.to_string(), "EIO on cur/123");
        assert_eq!(err.level(), Level::WARN);
        assert_eq!(Pop3Error::syntax("x").level(), Level::INFO);
    }
}
