//! The tokio driver of one outgoing SMTP connection: connect, greeting, EHLO (HELO fallback),
//! STARTTLS or implicit TLS, AUTH PLAIN/LOGIN, then any number of transactions (pipelined when
//! the peer offers PIPELINING), QUIT. The protocol decisions live in the sans-I/O modules
//! (`reply`, `ehlo`, `transaction`); this file only moves bytes and keeps time.

use std::io;
use std::net::SocketAddr;

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::net::stream::MaybeTls;

use super::ehlo::Capabilities;
use super::reply::{ReplyError, ReplyParser, ServerReply};
use super::tls::TlsPolicy;
use super::transaction::{
    data_block, interpret, mail_command, rcpt_command, Needs, Outgoing, RcptOutcome,
};

/// Waiting for the TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Waiting for the greeting and for each command's reply (RFC 5321 §4.5.3.2: 5 minutes).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Waiting for the reply to the end of data (RFC 5321 §4.5.3.2: 10 minutes).
pub const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);
/// Waiting for the reply to QUIT before closing anyway.
pub const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
const READ_BUFFER: usize = 16 * 1024;

/// Login at the smarthost.
#[derive(Clone)]
pub struct AuthCredentials {
    pub user: String,
    pub password: String,
}

/// How to set up one connection.
pub struct ConnectOptions<'a> {
    pub helo_name: &'a str,
    /// TLS from the first byte (SMTPS).
    pub implicit_tls: Option<&'a TlsPolicy>,
    /// STARTTLS when the peer offers it.
    pub starttls: Option<&'a TlsPolicy>,
    pub auth: Option<&'a AuthCredentials>,
    /// `smtp.smtputf8`: off, SMTPUTF8 is never used, whatever the peer offers.
    pub smtputf8: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("bad reply to {context}: {source}")]
    Reply {
        context: &'static str,
        source: ReplyError,
    },
    #[error("{stage} refused: {reply}")]
    Refused {
        stage: &'static str,
        reply: ServerReply,
    },
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("{0}")]
    Protocol(String),
}

impl ConnError {
    /// The reply to record for recipients this error left undelivered (always temporary:
    /// trouble with one host or connection is no reason to give up on a message).
    pub fn as_reply(&self) -> ServerReply {
        match self {
            ConnError::Refused { reply, .. } if reply.is_transient() => reply.clone(),
            ConnError::Refused { stage, reply } => {
                ServerReply::local(451, format!("4.4.0 {stage} refused: {reply}"))
            }
            ConnError::Timeout(_) => ServerReply::local(451, format!("4.4.2 {self}")),
            ConnError::Tls(_) => ServerReply::local(451, format!("4.7.5 {self}")),
            _ => ServerReply::local(451, format!("4.4.1 {self}")),
        }
    }

    /// STARTTLS was refused or its handshake failed: an opportunistic connection may be
    /// retried in plain text.
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            ConnError::Tls(_)
                | ConnError::Refused {
                    stage: "STARTTLS",
                    ..
                }
        )
    }
}

pub struct Connection {
    stream: MaybeTls,
    parser: ReplyParser,
    buf: Vec<u8>,
    pub caps: Capabilities,
    /// TLS version and cipher suite when encrypted.
    pub tls: Option<String>,
    /// The last transaction ended without its final reply (RSET before the next).
    dirty: bool,
    /// `smtp.smtputf8` of this server.
    own_smtputf8: bool,
}

impl Connection {
    /// Connects to `addr` and gets the session ready for transactions.
    pub async fn open(
        addr: SocketAddr,
        options: &ConnectOptions<'_>,
    ) -> Result<Connection, ConnError> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| ConnError::Timeout("the TCP connection"))?
            .map_err(|source| ConnError::Io {
                context: "connect",
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection {
            stream: MaybeTls::Plain(tcp),
            parser: ReplyParser::default(),
            buf: vec![0; READ_BUFFER],
            caps: Capabilities::default(),
            tls: None,
            dirty: false,
            own_smtputf8: options.smtputf8,
        };
        if let Some(policy) = options.implicit_tls {
            conn.start_tls(policy).await?;
        }
        let greeting = conn.read_reply("the greeting", COMMAND_TIMEOUT).await?;
        if greeting.code != 220 {
            return Err(ConnError::Refused {
                stage: "greeting",
                reply: greeting,
            });
        }
        conn.hello(options.helo_name).await?;
        if let Some(policy) = options.starttls {
            if conn.caps.starttls && conn.tls.is_none() {
                let reply = conn.command("STARTTLS\r\n", "STARTTLS").await?;
                if reply.code != 220 {
                    return Err(ConnError::Refused {
                        stage: "STARTTLS",
                        reply,
                    });
                }
                if conn.parser.has_pending() {
                    return Err(ConnError::Protocol(
                        "the server sent data after its STARTTLS reply".into(),
                    ));
                }
                conn.start_tls(policy).await?;
                conn.hello(options.helo_name).await?;
            }
        }
        if let Some(credentials) = options.auth {
            conn.authenticate(credentials).await?;
        }
        Ok(conn)
    }

    async fn start_tls(&mut self, policy: &TlsPolicy) -> Result<(), ConnError> {
        let connector = TlsConnector::from(policy.config.clone());
        self.stream
            .connect_tls(&connector, policy.server_name.clone(), COMMAND_TIMEOUT)
            .await
            .map_err(|err| match err.kind() {
                io::ErrorKind::TimedOut => ConnError::Timeout("the TLS handshake"),
                _ => ConnError::Tls(err),
            })?;
        self.tls = self.stream.tls_info();
        self.parser = ReplyParser::default();
        Ok(())
    }

    async fn hello(&mut self, helo_name: &str) -> Result<(), ConnError> {
        let reply = self
            .command(&format!("EHLO {helo_name}\r\n"), "EHLO")
            .await?;
        if reply.is_positive() {
            self.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        let reply = self
            .command(&format!("HELO {helo_name}\r\n"), "HELO")
            .await?;
        if !reply.is_positive() {
            return Err(ConnError::Refused {
                stage: "HELO",
                reply,
            });
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    async fn authenticate(&mut self, credentials: &AuthCredentials) -> Result<(), ConnError> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let reply = if self.caps.auth_plain {
            let token = b64(format!("\0{}\0{}", credentials.user, credentials.password).as_bytes());
            self.command(&format!("AUTH PLAIN {token}\r\n"), "AUTH")
                .await?
        } else if self.caps.auth_login {
            let reply = self.command("AUTH LOGIN\r\n", "AUTH").await?;
            if reply.code != 334 {
                return Err(ConnError::Refused {
                    stage: "AUTH LOGIN",
                    reply,
                });
            }
            let reply = self
                .command(&format!("{}\r\n", b64(credentials.user.as_bytes())), "AUTH")
                .await?;
            if reply.code != 334 {
                return Err(ConnError::Refused {
                    stage: "AUTH LOGIN user name",
                    reply,
                });
            }
            self.command(
                &format!("{}\r\n", b64(credentials.password.as_bytes())),
                "AUTH",
            )
            .await?
        } else {
            return Err(ConnError::Protocol(
                "the relay offers neither AUTH PLAIN nor AUTH LOGIN here (is TLS needed?)".into(),
            ));
        };
        if reply.code != 235 {
            return Err(ConnError::Refused {
                stage: "AUTH",
                reply,
            });
        }
        Ok(())
    }

    /// One transaction. `Err` means the connection is unusable; recipients without an outcome
    /// are then the caller's to defer.
    pub async fn send(&mut self, message: &Outgoing<'_>) -> Result<Vec<RcptOutcome>, ConnError> {
        let count = message.recipients.len();
        let needs = Needs::of(message);
        if needs.smtputf8 && !self.own_smtputf8 {
            return Ok(vec![RcptOutcome::Failed(smtputf8_off()); count]);
        }
        if let Some(refusal) = needs.refusal(&self.caps, message.message.len()) {
            return Ok(vec![RcptOutcome::Failed(refusal); count]);
        }
        if self.dirty {
            self.command("RSET\r\n", "RSET").await?;
        }
        self.dirty = true;
        let mail = mail_command(message.sender, message.message.len(), &self.caps, needs);
        let (mail_reply, rcpt_replies, data_reply) = if self.caps.pipelining {
            self.pipelined_envelope(&mail, message.recipients).await?
        } else {
            self.stepwise_envelope(&mail, message.recipients).await?
        };
        let accepted = rcpt_replies.iter().any(ServerReply::is_positive);
        let mut end_reply = None;
        if let Some(data) = &data_reply {
            if data.code == 354 {
                // Accepted recipients get the message; with none (a server that said 354
                // anyway), an empty message ends the transaction.
                let block = if accepted {
                    data_block(message.message)
                } else {
                    b".\r\n".to_vec()
                };
                self.write(&block).await?;
                end_reply = Some(self.read_reply("the end of data", DATA_END_TIMEOUT).await?);
                self.dirty = false;
            }
        }
        Ok(interpret(
            &mail_reply,
            &rcpt_replies,
            data_reply.as_ref(),
            end_reply.as_ref(),
            count,
        ))
    }

    /// MAIL, every RCPT and DATA in one write (RFC 2920), then their replies in order.
    async fn pipelined_envelope(
        &mut self,
        mail: &str,
        recipients: &[String],
    ) -> Result<(ServerReply, Vec<ServerReply>, Option<ServerReply>), ConnError> {
        let mut batch = mail.to_string();
        for rcpt in recipients {
            batch.push_str(&rcpt_command(rcpt));
        }
        batch.push_str("DATA\r\n");
        self.write(batch.as_bytes()).await?;
        let mail_reply = self.read_reply("MAIL", COMMAND_TIMEOUT).await?;
        let mut rcpt_replies = Vec::with_capacity(recipients.len());
        for _ in recipients {
            rcpt_replies.push(self.read_reply("RCPT", COMMAND_TIMEOUT).await?);
        }
        let data_reply = self.read_reply("DATA", COMMAND_TIMEOUT).await?;
        Ok((mail_reply, rcpt_replies, Some(data_reply)))
    }

    /// MAIL, RCPTs and DATA one at a time, stopping where it makes no sense to go on.
    async fn stepwise_envelope(
        &mut self,
        mail: &str,
        recipients: &[String],
    ) -> Result<(ServerReply, Vec<ServerReply>, Option<ServerReply>), ConnError> {
        let mail_reply = self.command(mail, "MAIL").await?;
        if !mail_reply.is_positive() {
            return Ok((mail_reply, Vec::new(), None));
        }
        let mut rcpt_replies = Vec::with_capacity(recipients.len());
        for rcpt in recipients {
            rcpt_replies.push(self.command(&rcpt_command(rcpt), "RCPT").await?);
        }
        if !rcpt_replies.iter().any(ServerReply::is_positive) {
            return Ok((mail_reply, rcpt_replies, None));
        }
        let data_reply = self.command("DATA\r\n", "DATA").await?;
        Ok((mail_reply, rcpt_replies, Some(data_reply)))
    }

    /// QUIT, waiting briefly for the reply; errors don't matter any more.
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = self.read_reply("QUIT", QUIT_TIMEOUT).await;
        }
        let _ = self.stream_shutdown().await;
    }

    async fn command(&mut self, line: &str, what: &'static str) -> Result<ServerReply, ConnError> {
        self.write(line.as_bytes()).await?;
        self.read_reply(what, COMMAND_TIMEOUT).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        let io = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(COMMAND_TIMEOUT, io)
            .await
            .map_err(|_| ConnError::Timeout("the peer to take data"))?
            .map_err(|source| ConnError::Io {
                context: "write",
                source,
            })
    }

    async fn read_reply(
        &mut self,
        what: &'static str,
        timeout: Duration,
    ) -> Result<ServerReply, ConnError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(source) => {
                    return Err(ConnError::Reply {
                        context: what,
                        source,
                    })
                }
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| ConnError::Timeout(what))?
                .map_err(|source| ConnError::Io {
                    context: "read",
                    source,
                })?;
            if read == 0 {
                return Err(ConnError::Io {
                    context: what,
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by the peer",
                    ),
                });
            }
            self.parser.push(&self.buf[..read]);
        }
    }

    async fn stream_shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

/// The permanent failure of a message that needs SMTPUTF8 when `smtp.smtputf8` is off (RFC
/// 6531 §3.2: it must not be sent without, and this server does not use it).
fn smtputf8_off() -> ServerReply {
    ServerReply::local(
        553,
        "5.6.7 The message needs SMTPUTF8 (non-ASCII addresses or headers), which is turned off on this server (smtp.smtputf8)",
    )
}
