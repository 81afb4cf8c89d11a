//! Telling the client about changes (untagged EXPUNGE/EXISTS/RECENT/FETCH after commands) and
//! IDLE (RFC 2177): the folder is watched until DONE, changes sent as they happen.

use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, CommandContinuationRequest, Data};
use imap_next::server::Event;
use imap_next::{Interrupt, Io, State as _};

use super::super::buffer::Supplied;
use super::super::flagdata::{changed_data, folder_flags, permanent_flags};
use super::super::qresync::sequence_sets;
use super::super::response::{nz, status, Kind};
use super::super::selected::{Selected, Update};
use super::super::state::{Phase, Session, IDLE_POLL, IDLE_SAFETY_POLL};
use super::super::watch::watch_folder;
use crate::net::driver::ReadOutcome;
use crate::store::UidRanges;

/// Re-reads the selected folder if it changed and sends the updates.
pub async fn refresh(session: &mut Session<'_>, announce_expunges: bool) -> std::io::Result<()> {
    let Phase::Selected(selected) = &mut session.phase else {
        return Ok(());
    };
    if !selected.may_have_changed() {
        if announce_expunges && selected.messages.iter().any(|m| m.gone) {
            let updates = selected.announce_expunges();
            send_updates(session, updates);
        }
        return Ok(());
    }
    let (folder, read_only) = (selected.folder.clone(), selected.read_only);
    let read = tokio::task::spawn_blocking(move || Selected::read_index(&folder, read_only))
        .await
        .map_err(std::io::Error::other)?;
    let updates = match (read, session.selected()) {
        (Ok((fresh, recent)), Some(selected)) => selected.apply(&fresh, recent, announce_expunges),
        (Err(err), _) => {
            tracing::warn!("re-reading the selected folder: {err}");
            Vec::new()
        }
        (Ok(_), None) => Vec::new(),
    };
    send_updates(session, updates);
    Ok(())
}

/// Sends `updates` in order. With QRESYNC on, expunges are told by UID (RFC 7162 §3.2.10):
/// each run of them becomes one `* VANISHED` (the client takes them out as a set, which
/// numbers the messages after it as the run of EXPUNGEs would).
pub fn send_updates(session: &mut Session<'_>, updates: Vec<Update>) {
    let mut vanished: Vec<u32> = Vec::new();
    for update in updates {
        if let (true, Update::Expunge { uid, .. }) = (session.qresync, &update) {
            vanished.push(*uid);
            continue;
        }
        send_vanished(session, &mut vanished);
        let data = match update {
            Update::Expunge { seq, .. } => Data::Expunge(nz(seq)),
            Update::Exists(count) => Data::Exists(count),
            Update::Recent(_) if !session.shows_recent() => continue,
            Update::Recent(count) => Data::Recent(count),
            Update::Flags(changed) => match changed_data(&changed, session.flags_shown()) {
                Some(data) => data,
                None => continue,
            },
            Update::UidValidityChanged => {
                session.send_status(super::super::response::bye(
                    "The folder's UIDVALIDITY changed; please reconnect",
                ));
                session.phase = Phase::Logout;
                return;
            }
            Update::FlagList => {
                let Some(selected) = session.selected() else {
                    continue;
                };
                let (flags, permanent) = (folder_flags(selected), permanent_flags(selected));
                session.send_data(Data::Flags(flags));
                session.send_status(status(
                    Kind::Ok,
                    None,
                    Some(Code::PermanentFlags(permanent)),
                    "Flags permitted",
                ));
                continue;
            }
        };
        session.send_data(data);
    }
    send_vanished(session, &mut vanished);
}

/// `* VANISHED uids` for the expunges collected, if any.
fn send_vanished(session: &mut Session<'_>, uids: &mut Vec<u32>) {
    if uids.is_empty() {
        return;
    }
    let ranges = UidRanges::from_uids(uids);
    uids.clear();
    for known_uids in sequence_sets(&ranges) {
        session.send_data(Data::Vanished {
            earlier: false,
            known_uids,
        });
    }
}

impl Session<'_> {
    /// IDLE until DONE: changes are sent as they happen. Input still goes through the guard
    /// (in its IDLE mode: lines are framed and limited, nothing is taken from imap-next).
    pub(in super::super) async fn idle(&mut self, tag: Tag<'static>) -> std::io::Result<()> {
        // IDLE is for the authenticated and selected states (RFC 2177).
        if matches!(self.phase, Phase::NotAuthenticated) {
            self.errors += 1;
            let _ = self
                .server
                .idle_reject(status(Kind::Bad, Some(tag), None, "Log in first"));
            return Ok(());
        }
        let accept = CommandContinuationRequest::basic(None, "idling")
            .unwrap_or_else(|_| CommandContinuationRequest::base64(Vec::new()));
        if self.server.idle_accept(accept).is_err() {
            return Ok(());
        }
        self.guard.set_idle(true);
        let result = self.idle_until_done(tag).await;
        self.guard.set_idle(false);
        result
    }

    async fn idle_until_done(&mut self, tag: Tag<'static>) -> std::io::Result<()> {
        let timeout = self.timeout();
        let started = tokio::time::Instant::now();
        // Woken by inotify where it can; else (and as a safety net) by polling.
        let mut watch = self
            .selected()
            .and_then(|selected| watch_folder(selected.folder.dir()));
        let poll = if watch.is_some() {
            IDLE_SAFETY_POLL
        } else {
            IDLE_POLL
        };
        loop {
            // Drain what the parser has (the "+ idling", or DONE), feeding it what was read.
            loop {
                match self.server.next() {
                    Err(Interrupt::Io(Io::Output(bytes))) => self.parser_output(bytes),
                    Ok(Event::IdleDoneReceived) => {
                        refresh(self, true).await?;
                        self.send_status(status(Kind::Ok, Some(tag), None, "IDLE terminated"));
                        return Ok(());
                    }
                    Err(Interrupt::Io(Io::NeedMoreInput)) => match self.supply().await? {
                        Supplied::Parser => continue,
                        Supplied::NeedInput => break,
                        Supplied::Over => return Ok(()),
                    },
                    Err(Interrupt::Error(_)) => {
                        self.send_status(status(Kind::Bad, None, None, "Expected DONE"));
                    }
                    Ok(_) => {}
                }
            }
            refresh(self, true).await?;
            self.flush().await?;
            if started.elapsed() >= timeout {
                self.send_status(super::super::response::bye("Autologout; idle for too long"));
                self.phase = Phase::Logout;
                return Ok(());
            }
            enum Woke {
                Read(std::io::Result<ReadOutcome>),
                Tick,
            }
            let woke = {
                let changed = async {
                    match &mut watch {
                        Some(watch) => {
                            if watch.changes.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                // A read that waits `poll` at most: its timeout is the next look at the folder.
                let read = self.conn.poll_into(self.input.space(), poll, true);
                tokio::select! {
                    read = read => Woke::Read(read),
                    () = changed => Woke::Tick,
                }
            };
            match woke {
                Woke::Read(Ok(ReadOutcome::Closed)) => {
                    self.phase = Phase::Logout;
                    return Ok(());
                }
                Woke::Read(Ok(ReadOutcome::Data(n))) => self.input.filled(n),
                Woke::Read(Ok(ReadOutcome::TimedOut)) | Woke::Tick => {}
                Woke::Read(Ok(ReadOutcome::ShuttingDown)) => {
                    self.send_status(super::super::response::bye("Server shutting down"));
                    self.phase = Phase::Logout;
                    return Ok(());
                }
                Woke::Read(Err(err)) => return Err(err),
            }
        }
    }
}
