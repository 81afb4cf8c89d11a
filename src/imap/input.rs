//! The session's input path: what is read from the client waits in one buffer of
//! `READ_BUFFER` bytes and goes through the input guard (`guard`) one step at a time — to
//! imap-next (complete lines, literals of commands it parses), to the streaming APPEND
//! (`commands::append`), or to an answer for a command the guard refused. A step is taken only
//! when imap-next has nothing left to do, so answers keep the order of the commands, and
//! nothing more is read before the buffer is used up, so memory stays bounded.

use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::Code;
use imap_next::State as _;
use tracing::info;

use super::appending::Appending;
use super::buffer::Supplied;
use super::commands::idle::refresh;
use super::commands::{append, imapurl, list};
use super::guard::{AppendCommand, Reason, Refusal, Step};
use super::response::{bye, continuation, status, Kind};
use super::searchres;
use super::state::{Done, Phase, Session};

/// The answer to an APPEND in the `UTF8 (literal8)` form before ENABLE.
const UTF8_NOT_ENABLED: &str = "APPEND UTF8 is only valid after ENABLE UTF8=ACCEPT";

impl Session<'_> {
    /// Works through the guard's steps on what was read until imap-next has bytes, all of it
    /// is taken, or the session is over.
    pub async fn supply(&mut self) -> std::io::Result<Supplied> {
        loop {
            if matches!(self.phase, Phase::Logout) {
                return Ok(Supplied::Over);
            }
            let (used, step) = self.guard.next(self.input.pending());
            let taken = self.input.take(used);
            match step {
                Step::NeedInput => return Ok(Supplied::NeedInput),
                Step::Pass(bytes) => {
                    let bytes = self.result_references(bytes);
                    self.server.enqueue_input(&bytes);
                    return Ok(Supplied::Parser);
                }
                Step::Message(n) => {
                    let data = &self.input.buf[taken.end - n..taken.end];
                    if let Some(appending) = &mut self.appending {
                        appending.write(data).await;
                    }
                }
                Step::Refuse(refusal) => self.refused(refusal),
                Step::Continue => self.conn.send(&continuation()),
                Step::Append(command) => self.begin_append(command).await,
                Step::CatenateUrl(url) => self.catenate_url(url).await,
                Step::CatenateText { size, sync, utf8 } => {
                    self.catenate_text(size, sync, utf8).await
                }
                Step::MessageEnd { well_formed } => self.end_append(well_formed).await?,
                Step::List(command) => list::run_whole(self, &command).await?,
            }
        }
    }

    /// [`Session::supply`], reading from the client as needed; false when the session is over.
    pub async fn supply_reading(&mut self) -> std::io::Result<bool> {
        loop {
            match self.supply().await? {
                Supplied::Parser => return Ok(true),
                Supplied::Over => return Ok(false),
                Supplied::NeedInput => {
                    self.flush().await?;
                    if !self.read_more().await? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// A command line with SEARCHRES's `$` written out (`searchres`); literal bytes, and
    /// lines outside a selected folder, as they are.
    fn result_references(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        let Some(first) = self.guard.passed_line() else {
            return bytes;
        };
        if first {
            self.dollar_scan = searchres::Scan::default();
        }
        let Phase::Selected(selected) = &self.phase else {
            return bytes;
        };
        let saved = || {
            let mut uids = Vec::new();
            let mut seqs = Vec::new();
            for &uid in &self.search_saved {
                if let Ok(at) = selected.messages.binary_search_by_key(&uid, |m| m.meta.uid) {
                    uids.push(uid);
                    seqs.push(at as u32 + 1);
                }
            }
            searchres::Saved {
                uids,
                seqs,
                // (UIDs are handed out far below u32::MAX: UIDNEXT would be out of range.)
                beyond: selected.max_uid().saturating_add(1),
            }
        };
        searchres::rewrite(&bytes, &mut self.dollar_scan, &saved).unwrap_or(bytes)
    }

    fn refused(&mut self, refusal: Refusal) {
        info!("refused: {refusal:?}");
        if refusal.reset_parser {
            self.reset_parser();
        }
        let before_login = matches!(self.phase, Phase::NotAuthenticated);
        let (code, text) = match refusal.reason {
            Reason::LineTooLong { limit } => (
                Some(Code::TooBig),
                format!("Command line longer than {limit} bytes"),
            ),
            Reason::LiteralTooBig { size, limit } => (
                Some(Code::TooBig),
                format!(
                    "Literal of {size} bytes is larger than the limit of {limit} bytes{}",
                    if before_login { " before login" } else { "" }
                ),
            ),
            Reason::CommandTooBig { limit } => (
                Some(Code::TooBig),
                format!("Command larger than {limit} bytes"),
            ),
            Reason::AppendSyntax => (None, "Syntax error in APPEND".to_string()),
        };
        let done = Done {
            kind: Kind::Bad,
            code,
            text,
            starttls: false,
        };
        match refusal.tag.and_then(|tag| Tag::try_from(tag).ok()) {
            Some(tag) => self.complete(tag, done),
            None => self.send_status(status(Kind::Bad, None, done.code, &done.text)),
        }
        // (Unless `complete` has just said goodbye for too many errors.)
        if refusal.close && !matches!(self.phase, Phase::Logout) {
            self.send_status(bye("Closing: the rest of this command can't be skipped"));
            self.phase = Phase::Logout;
        }
    }

    async fn begin_append(&mut self, command: AppendCommand) {
        if command.utf8 && !self.utf8 {
            // RFC 6855 §4: the form exists only for a client that enabled it. Before any `+`.
            self.guard.refuse_message();
            let tag = match self.appending.take() {
                Some(appending) => appending.tag.clone(),
                None => command.tag,
            };
            return self.complete(tag, Done::bad(UTF8_NOT_ENABLED));
        }
        if command.next {
            return self.next_append(command).await;
        }
        match append::begin(self, &command).await {
            Ok(appending) => {
                self.guard.accept_message();
                // (A CATENATE head announces no message literal: its TEXT parts get theirs.)
                if command.sync && !command.catenate {
                    self.conn.send(&continuation());
                }
                self.appending = Some(appending);
            }
            Err(done) => {
                self.guard.refuse_message();
                self.complete(command.tag, done);
            }
        }
    }

    /// A CATENATE URL part: its content is added to the message, or the APPEND is answered
    /// (`NO [BADURL]`, `NO [TOOBIG]`) and nothing of it stays.
    async fn catenate_url(&mut self, url: String) {
        let Some(mut appending) = self.appending.take() else {
            self.guard.refuse_message();
            return;
        };
        if let Err(done) = appending.count_part() {
            return self.part_decided(appending, Err(done), false);
        }
        let added = match imapurl::content(self, &url).await {
            Ok(data) => match appending.add_part(self, data.len() as u64).await {
                Ok(()) => {
                    appending.write(&data).await;
                    Ok(())
                }
                Err(done) => Err(done),
            },
            Err(done) => Err(done),
        };
        self.part_decided(appending, added, false);
    }

    /// A CATENATE TEXT part of `size` bytes: taken (`+` first if synchronising), or the
    /// APPEND is answered.
    async fn catenate_text(&mut self, size: u32, sync: bool, utf8: bool) {
        let Some(mut appending) = self.appending.take() else {
            self.guard.refuse_message();
            return;
        };
        if utf8 && !self.utf8 {
            return self.part_decided(appending, Err(Done::bad(UTF8_NOT_ENABLED)), false);
        }
        let added = match appending.count_part() {
            Ok(()) => appending.add_part(self, u64::from(size)).await,
            Err(done) => Err(done),
        };
        self.part_decided(appending, added, sync);
    }

    fn part_decided(&mut self, appending: Appending, added: Result<(), Done>, sync: bool) {
        match added {
            Ok(()) => {
                self.guard.accept_message();
                if sync {
                    self.conn.send(&continuation());
                }
                self.appending = Some(appending);
            }
            Err(done) => {
                let tag = appending.tag.clone();
                drop(appending);
                self.guard.refuse_message();
                self.complete(tag, done);
            }
        }
    }

    /// MULTIAPPEND's next message: taken, or the whole APPEND is answered and nothing of it
    /// stays.
    async fn next_append(&mut self, command: AppendCommand) {
        let Some(mut appending) = self.appending.take() else {
            self.guard.refuse_message();
            return self.complete(command.tag, Done::bad("APPEND failed before"));
        };
        match appending.next(self, &command).await {
            Ok(()) => {
                self.guard.accept_message();
                if command.sync && !command.catenate {
                    self.conn.send(&continuation());
                }
                self.appending = Some(appending);
            }
            Err(done) => {
                let tag = appending.tag.clone();
                drop(appending);
                self.guard.refuse_message();
                self.complete(tag, done);
            }
        }
    }

    async fn end_append(&mut self, well_formed: bool) -> std::io::Result<()> {
        let Some(appending) = self.appending.take() else {
            return Ok(());
        };
        let tag = appending.tag.clone();
        let done = if well_formed {
            appending.finish(self).await
        } else {
            drop(appending);
            Done::bad("Syntax error after the message")
        };
        // As after every command: changes to the selected folder (this message, if it went
        // there) before the completion.
        if self.is_selected() {
            refresh(self, true).await?;
        }
        self.complete(tag, done);
        Ok(())
    }
}
