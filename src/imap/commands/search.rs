//! SEARCH and UID SEARCH: keys evaluated by `imap::search` on the blocking pool, the message
//! read only when a key needs its text.

use std::num::NonZeroU64;

use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::search::SearchKey;

use super::super::cache;
use super::super::message::MessageMeta;
use super::super::response::nz;
use super::super::search::{check_charset, matches, SearchError, SearchScope, SearchSubject};
use super::super::selected::ViewMessage;
use super::super::state::{Done, Session};
use crate::store::to_wire_form;

struct Subject<'a> {
    seq: u32,
    message: &'a ViewMessage,
    /// The whole message, once a key needed it.
    raw: Option<Vec<u8>>,
    /// Its header block (from the cache), for header keys.
    header: Option<std::sync::Arc<Vec<u8>>>,
}

impl SearchSubject for Subject<'_> {
    fn seq(&self) -> u32 {
        self.seq
    }
    fn meta(&self) -> &MessageMeta {
        &self.message.meta
    }
    fn recent(&self) -> bool {
        self.message.recent
    }
    fn raw(&mut self) -> std::io::Result<&[u8]> {
        if self.raw.is_none() {
            self.raw = Some(to_wire_form(&std::fs::read(&self.message.path)?));
        }
        Ok(self.raw.as_deref().unwrap_or(&[]))
    }
    fn header_block(&mut self) -> std::io::Result<&[u8]> {
        if self.raw.is_none() && self.header.is_none() {
            self.header = Some(cache::header_block(&self.message.path)?);
        }
        Ok(match (&self.raw, &self.header) {
            (Some(raw), _) => raw,
            (None, Some(header)) => header,
            (None, None) => &[],
        })
    }
}

/// Whether a key mentions MODSEQ (then the response carries the highest one, RFC 7162).
fn uses_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::And(keys) => keys.as_ref().iter().any(uses_modseq),
        SearchKey::Not(key) => uses_modseq(key),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        _ => false,
    }
}

pub async fn search(
    session: &mut Session<'_>,
    charset: Option<Charset<'static>>,
    criteria: Vec1<SearchKey<'static>>,
    uid: bool,
) -> std::io::Result<Done> {
    if let Err(SearchError::BadCharset) = check_charset(charset.as_ref()) {
        return Ok(Done::no_code(
            Code::BadCharset {
                allowed: vec![
                    Charset::try_from("UTF-8").unwrap_or_else(|_| unreachable!()),
                    Charset::try_from("US-ASCII").unwrap_or_else(|_| unreachable!()),
                ],
            },
            "Unsupported charset",
        ));
    }
    let with_modseq = criteria.as_ref().iter().any(uses_modseq);
    if with_modseq {
        session.condstore = true;
    }
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    let messages: Vec<ViewMessage> = selected.messages.clone();
    let scope = SearchScope {
        max_seq: messages.len() as u32,
        max_uid: selected.max_uid(),
    };
    let keys: Vec<SearchKey<'static>> = criteria.into_inner();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        let mut highest = 0u64;
        for (index, message) in messages.iter().enumerate() {
            let mut subject = Subject {
                seq: index as u32 + 1,
                message,
                raw: None,
                header: None,
            };
            match matches(&keys, &mut subject, &scope) {
                Ok(true) => {
                    found.push(if uid {
                        message.meta.uid
                    } else {
                        index as u32 + 1
                    });
                    highest = highest.max(message.meta.modseq);
                }
                Ok(false) => {}
                // A message that vanished meanwhile simply doesn't match.
                Err(SearchError::Io(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok((found, highest))
    })
    .await
    .map_err(std::io::Error::other)?;
    let (found, highest) = match outcome {
        Ok(found) => found,
        Err(err) => return Ok(Done::bad(format!("Invalid search: {err}"))),
    };
    let modseq = if with_modseq {
        NonZeroU64::new(highest)
    } else {
        None
    };
    session.send_data(Data::Search(found.into_iter().map(nz).collect(), modseq));
    Ok(Done::ok("SEARCH completed"))
}
