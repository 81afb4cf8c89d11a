//! SEARCH: evaluating RFC 3501 §6.4.4 search keys (plus CONDSTORE's MODSEQ, RFC 7162) against
//! one message.
//!
//! Pure evaluation: the caller walks the folder and hands each message in as a
//! [`SearchSubject`]. Flag, size, date and set keys are answered from the index entry alone;
//! the message file is read only when a header, body or Date: key needs it, and then parsed
//! once for all such keys of the search.

mod content;
mod sets;
#[cfg(test)]
mod tests;

use chrono::NaiveDate;
use imap_codec::imap_types::{core::Charset, search::SearchKey};

use crate::imap::message::MessageMeta;

/// A message being tested; the raw message is loaded only when a key needs it
/// (header/body/text keys).
pub trait SearchSubject {
    fn seq(&self) -> u32;
    fn meta(&self) -> &MessageMeta;
    /// \Recent for this session.
    fn recent(&self) -> bool;
    /// The full message, CRLF line ends.
    fn raw(&mut self) -> std::io::Result<&[u8]>;
    /// At least the message's header block (the full message will do): header keys need no
    /// more, and a store can read less.
    fn header_block(&mut self) -> std::io::Result<&[u8]> {
        self.raw()
    }
}

/// The folder as the session sees it, to resolve `*` in sequence sets and UID sets (an empty
/// folder has 0 for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchScope {
    pub max_seq: u32,
    pub max_uid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The CHARSET argument names a charset other than UTF-8 or US-ASCII; the caller answers
    /// `NO [BADCHARSET (UTF-8 US-ASCII)]`.
    #[error("unsupported search charset")]
    BadCharset,
    /// The message file could not be read.
    #[error("reading the message: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks the CHARSET argument: None, "UTF-8" and "US-ASCII" (case-insensitive) are OK;
/// anything else is [`SearchError::BadCharset`]. Search strings are then taken as UTF-8 (of
/// which US-ASCII is a subset), so no conversion is needed.
pub fn check_charset(charset: Option<&Charset<'_>>) -> Result<(), SearchError> {
    let name = match charset {
        None => return Ok(()),
        Some(Charset::Atom(atom)) => atom.inner(),
        Some(Charset::Quoted(quoted)) => quoted.inner(),
    };
    if name.eq_ignore_ascii_case("UTF-8") || name.eq_ignore_ascii_case("US-ASCII") {
        Ok(())
    } else {
        Err(SearchError::BadCharset)
    }
}

/// True when the message matches all `keys` (the top-level list is an AND).
pub fn matches(
    keys: &[SearchKey<'_>],
    subject: &mut dyn SearchSubject,
    scope: &SearchScope,
) -> Result<bool, SearchError> {
    Eval {
        subject,
        scope,
        header: None,
        header_text: None,
        body: None,
    }
    .all(keys)
}

/// One message under test, with what has been taken out of its file so far.
struct Eval<'a> {
    subject: &'a mut dyn SearchSubject,
    scope: &'a SearchScope,
    header: Option<content::Header>,
    /// The header as one case-folded text, for TEXT.
    header_text: Option<String>,
    /// The case-folded text of the body.
    body: Option<String>,
}

impl Eval<'_> {
    /// An AND of keys. Keys answered from the index go first, so that a message failing on a
    /// flag or a date is never read from disk.
    fn all(&mut self, keys: &[SearchKey<'_>]) -> Result<bool, SearchError> {
        let (cheap, costly): (Vec<_>, Vec<_>) = keys.iter().partition(|k| !needs_file(k));
        for key in cheap.into_iter().chain(costly) {
            if !self.key(key)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn key(&mut self, key: &SearchKey<'_>) -> Result<bool, SearchError> {
        let meta = self.subject.meta();
        let flags = &meta.flags;
        Ok(match key {
            SearchKey::And(keys) => return self.all(keys.as_ref()),
            SearchKey::Not(key) => !self.key(key)?,
            SearchKey::Or(a, b) => self.key(a)? || self.key(b)?,

            SearchKey::All => true,
            SearchKey::SequenceSet(set) => {
                sets::contains(set, self.subject.seq(), self.scope.max_seq)
            }
            SearchKey::Uid(set) => sets::contains(set, meta.uid, self.scope.max_uid),

            SearchKey::Answered => flags.answered,
            SearchKey::Deleted => flags.deleted,
            SearchKey::Draft => flags.draft,
            SearchKey::Flagged => flags.flagged,
            SearchKey::Seen => flags.seen,
            SearchKey::Unanswered => !flags.answered,
            SearchKey::Undeleted => !flags.deleted,
            SearchKey::Undraft => !flags.draft,
            SearchKey::Unflagged => !flags.flagged,
            SearchKey::Unseen => !flags.seen,
            SearchKey::Keyword(atom) => flags.has_keyword(atom.inner()),
            SearchKey::Unkeyword(atom) => !flags.has_keyword(atom.inner()),
            SearchKey::Recent => self.subject.recent(),
            SearchKey::Old => !self.subject.recent(),
            SearchKey::New => self.subject.recent() && !flags.seen,

            SearchKey::Larger(n) => meta.size > u64::from(*n),
            SearchKey::Smaller(n) => meta.size < u64::from(*n),
            SearchKey::ModSequence { modseq, .. } => meta.modseq >= *modseq,

            SearchKey::Before(date) => internal_date(meta) < *date.as_ref(),
            SearchKey::On(date) => internal_date(meta) == *date.as_ref(),
            SearchKey::Since(date) => internal_date(meta) >= *date.as_ref(),
            SearchKey::SentBefore(date) => self.sent_date()? < *date.as_ref(),
            SearchKey::SentOn(date) => self.sent_date()? == *date.as_ref(),
            SearchKey::SentSince(date) => self.sent_date()? >= *date.as_ref(),

            SearchKey::From(s) => self.field_contains("From", s.as_ref())?,
            SearchKey::To(s) => self.field_contains("To", s.as_ref())?,
            SearchKey::Cc(s) => self.field_contains("Cc", s.as_ref())?,
            SearchKey::Bcc(s) => self.field_contains("Bcc", s.as_ref())?,
            SearchKey::Subject(s) => self.field_contains("Subject", s.as_ref())?,
            SearchKey::Header(name, s) => {
                let name = String::from_utf8_lossy(name.as_ref()).into_owned();
                self.field_contains(&name, s.as_ref())?
            }
            SearchKey::Body(s) => self.body()?.contains(&needle(s.as_ref())),
            SearchKey::Text(s) => {
                let needle = needle(s.as_ref());
                self.header_text()?.contains(&needle) || self.body()?.contains(&needle)
            }
        })
    }

    /// True when a top-level header field of that name contains the string. An empty string
    /// matches any message that has the field (RFC 3501 on HEADER; the same for FROM etc.).
    fn field_contains(&mut self, name: &str, s: &[u8]) -> Result<bool, SearchError> {
        let needle = needle(s);
        Ok(self
            .header()?
            .fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name) && f.contains(&needle)))
    }

    /// The Date: header's date, or the internal date when there is no parsable Date: header
    /// (as Dovecot does), so that SENTSINCE and SENTBEFORE still split such messages.
    fn sent_date(&mut self) -> Result<NaiveDate, SearchError> {
        let sent = self.header()?.sent_date;
        Ok(sent.unwrap_or_else(|| internal_date(self.subject.meta())))
    }

    fn header(&mut self) -> Result<&content::Header, SearchError> {
        let header = match self.header.take() {
            Some(header) => header,
            None => content::header(self.subject.header_block()?),
        };
        Ok(self.header.insert(header))
    }

    fn header_text(&mut self) -> Result<&str, SearchError> {
        let text = match self.header_text.take() {
            Some(text) => text,
            None => self.header()?.text(),
        };
        Ok(self.header_text.insert(text))
    }

    fn body(&mut self) -> Result<&str, SearchError> {
        let body = match self.body.take() {
            Some(body) => body,
            None => content::body_text(self.subject.raw()?),
        };
        Ok(self.body.insert(body))
    }
}

/// True when evaluating the key may need the message file (header, body or Date: keys).
fn needs_file(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_file),
        SearchKey::Not(key) => needs_file(key),
        SearchKey::Or(a, b) => needs_file(a) || needs_file(b),
        SearchKey::Bcc(_)
        | SearchKey::Body(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Subject(_)
        | SearchKey::Text(_)
        | SearchKey::To(_) => true,
        _ => false,
    }
}

/// The search string, decoded as UTF-8 (the only charsets accepted are UTF-8 and its subset
/// US-ASCII) and case-folded like the message text.
fn needle(s: &[u8]) -> String {
    content::fold(&String::from_utf8_lossy(s))
}

/// The UTC calendar date of INTERNALDATE (RFC 3501: "disregarding time and timezone").
fn internal_date(meta: &MessageMeta) -> NaiveDate {
    chrono::DateTime::from_timestamp(meta.internal_date, 0)
        .unwrap_or_default()
        .date_naive()
}
