//! Why an LDAP connection ends before the client unbinds: each is logged and the connection
//! closed (after a Notice of Disconnection when the client can still read one).

use super::bounds::FrameError;

#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("undecodable request: {0}")]
    Decode(String),
    #[error("a {0} is not a request")]
    NotARequest(&'static str),
    #[error("bytes after the StartTLS request, before the handshake")]
    PipelinedStartTls,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl LdapError {
    /// Whether the client broke the protocol (it gets a Notice of Disconnection).
    pub fn is_protocol(&self) -> bool {
        !matches!(self, LdapError::Io(_))
    }
}
