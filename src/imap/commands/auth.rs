//! LOGIN and AUTHENTICATE PLAIN (with SASL-IR, RFC 4959): credentials checked by the shared
//! authenticator (slow-down, logging), then the account's mailbox is opened.

use std::borrow::Cow;

use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::response::{Code, CommandContinuationRequest};
use imap_codec::imap_types::secret::Secret;
use imap_next::types::CommandAuthenticate;

use super::super::error::blocking;
use super::super::response::{other, status, Kind};
use super::super::state::{Done, Phase, Session};
use crate::auth::sasl::{parse_plain, Credentials};

fn auth_failed() -> Done {
    Done::no_code(other("AUTHENTICATIONFAILED"), "Authentication failed")
}

/// Refusals before the password is even looked at.
fn precheck(session: &Session<'_>) -> Option<Done> {
    if !matches!(session.phase, Phase::NotAuthenticated) {
        return Some(Done::bad("Already logged in"));
    }
    if !session.offer().login {
        return Some(Done::no_code(
            other("PRIVACYREQUIRED"),
            "Log in only over TLS: use STARTTLS first",
        ));
    }
    None
}

pub async fn login(
    session: &mut Session<'_>,
    username: AString<'static>,
    password: Secret<AString<'static>>,
) -> std::io::Result<Done> {
    if let Some(refused) = precheck(session) {
        return Ok(refused);
    }
    let Ok(login) = String::from_utf8(username.as_ref().to_vec()) else {
        return Ok(auth_failed());
    };
    let credentials = Credentials {
        login,
        password: password.declassify().as_ref().to_vec(),
        authzid: None,
    };
    Ok(finish_login(session, credentials).await)
}

/// Checks the credentials and, when they are good, opens the mailbox.
async fn finish_login(session: &mut Session<'_>, credentials: Credentials) -> Done {
    let Ok(account) = session
        .ctx
        .authenticator
        .authenticate(&credentials, session.conn.peer().ip())
        .await
    else {
        return auth_failed();
    };
    let Ok(slot) = session.ctx.users.acquire(account.clone()) else {
        return Done::no_code(other("LIMIT"), "Too many sessions for this account");
    };
    let store = session.ctx.store.clone();
    let opened = {
        let account = account.clone();
        blocking("opening the mailbox", move || {
            store.ensure_account(&account)
        })
        .await
    };
    match opened {
        Ok(root) => {
            session.logged_in(account, root, slot);
            let caps = super::misc::capabilities(session.offer(), true);
            Done::ok_code(Code::Capability(caps), "Logged in")
        }
        Err(err) => err.into_done(),
    }
}

impl Session<'_> {
    /// AUTHENTICATE: PLAIN only; with an initial response (SASL-IR) it completes at once,
    /// otherwise an empty challenge asks for the response.
    pub(in super::super) async fn authenticate(
        &mut self,
        command: CommandAuthenticate,
    ) -> std::io::Result<()> {
        let tag = command.tag.clone();
        let refused = match precheck(self) {
            Some(refused) => Some(refused),
            None if command.mechanism != AuthMechanism::Plain => {
                Some(Done::no("Unsupported mechanism; use PLAIN"))
            }
            None => None,
        };
        if let Some(done) = refused {
            let _ = self.server.authenticate_finish(status(
                done.kind,
                Some(tag),
                done.code,
                &done.text,
            ));
            return Ok(());
        }
        self.auth_tag = Some(tag);
        match command.initial_response {
            Some(response) => self.authenticate_bytes(response.declassify()).await,
            None => {
                let challenge = CommandContinuationRequest::base64(Cow::Borrowed(&b""[..]));
                let _ = self.server.authenticate_continue(challenge);
                Ok(())
            }
        }
    }

    pub(in super::super) async fn authenticate_data(
        &mut self,
        data: AuthenticateData<'static>,
    ) -> std::io::Result<()> {
        match data {
            AuthenticateData::Continue(bytes) => self.authenticate_bytes(bytes.declassify()).await,
            AuthenticateData::Cancel => {
                let tag = self.auth_tag.take();
                let _ = self.server.authenticate_finish(status(
                    Kind::Bad,
                    tag,
                    None,
                    "Authentication cancelled",
                ));
                Ok(())
            }
        }
    }

    async fn authenticate_bytes(&mut self, response: &[u8]) -> std::io::Result<()> {
        let done = match parse_plain(response) {
            Ok(credentials) => finish_login(self, credentials).await,
            Err(_) => Done::bad("Malformed PLAIN response"),
        };
        let tag = self.auth_tag.take();
        let _ = self
            .server
            .authenticate_finish(status(done.kind, tag, done.code, &done.text));
        Ok(())
    }
}
