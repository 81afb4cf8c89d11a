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
use super::super::sequence::uid_ranges;
use super::super::state::{Done, Session};
use crate::store::to_wire_form;

pub(super) struct Subject<'a> {
    seq: u32,
    message: &'a ViewMessage,
    /// The whole message, once a key needed it.
    raw: Option<Vec<u8>>,
    /// Its header block (from the cache), for header keys.
    header: Option<std::sync::Arc<Vec<u8>>>,
}

impl<'a> Subject<'a> {
    /// Message `seq` of the view, nothing read yet (SORT and THREAD search with it too).
    pub(super) fn new(seq: u32, message: &'a ViewMessage) -> Self {
        Subject {
            seq,
            message,
            raw: None,
            header: None,
        }
    }
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
pub(super) fn uses_modseq(key: &SearchKey<'_>) -> bool {
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
    let esearch = session.search_return.take();
    let save = esearch
        .as_ref()
        .is_some_and(|(_, options)| options.iter().any(|o| o == "SAVE"));
    if save {
        // A SEARCH that fails leaves an empty saved result (RFC 5182 §2.1).
        session.search_saved.clear();
    }
    if session.utf8 && charset.is_some() {
        // RFC 6855 §3: after ENABLE UTF8=ACCEPT strings are UTF-8 and a CHARSET conflicts
        // with that: the RFC's answer is BAD.
        return Ok(Done::bad(
            "SEARCH CHARSET is not allowed after ENABLE UTF8=ACCEPT",
        ));
    }
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
    if let Some((_, options)) = &esearch {
        if let Some(unknown) = options
            .iter()
            .find(|o| !RETURN_OPTIONS.contains(&o.as_str()))
        {
            return Ok(Done::bad(format!(
                "RETURN option {unknown} is not supported"
            )));
        }
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
        let mut found_uids = Vec::new();
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
                    found_uids.push(message.meta.uid);
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
        Ok((found, found_uids, highest))
    })
    .await
    .map_err(std::io::Error::other)?;
    let (found, found_uids, highest) = match outcome {
        Ok(found) => found,
        Err(err) => return Ok(Done::bad(format!("Invalid search: {err}"))),
    };
    let modseq = if with_modseq {
        NonZeroU64::new(highest)
    } else {
        None
    };
    if let (true, Some((_, options))) = (save, &esearch) {
        session.search_saved = saved_result(options, &found_uids);
    }
    match esearch {
        // SAVE alone: the result is kept, and not sent (RFC 5182 §2.4).
        Some((_, options)) if save && options.iter().all(|o| o == "SAVE") => {}
        Some((tag, options)) => {
            let options: Vec<String> = options.into_iter().filter(|o| o != "SAVE").collect();
            let line = esearch_response(&tag, uid, &options, &found, modseq);
            session.conn.send(line.as_bytes());
        }
        None => session.send_data(Data::Search(found.into_iter().map(nz).collect(), modseq)),
    }
    Ok(Done::ok("SEARCH completed"))
}

/// The RETURN options of RFC 4731, and SAVE (SEARCHRES, RFC 5182).
const RETURN_OPTIONS: [&str; 5] = ["MIN", "MAX", "COUNT", "ALL", "SAVE"];

/// What `RETURN (SAVE ...)` saves of `found` (UIDs, ascending): with only MIN and/or MAX
/// beside it, those messages; otherwise all of them (RFC 5182 §2.4).
fn saved_result(options: &[String], found: &[u32]) -> Vec<u32> {
    let has = |name: &str| options.iter().any(|o| o == name);
    if has("ALL") || has("COUNT") || !(has("MIN") || has("MAX")) {
        return found.to_vec();
    }
    let mut saved = Vec::new();
    if let (Some(&min), true) = (found.first(), has("MIN")) {
        saved.push(min);
    }
    if let (Some(&max), true) = (found.last(), has("MAX")) {
        if saved.last() != Some(&max) {
            saved.push(max);
        }
    }
    saved
}

/// `* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [COUNT n] [ALL set] [MODSEQ m]` (RFC 4731 §3.1,
/// RFC 7162 §3.1.5): `RETURN ()` means ALL; MIN, MAX and ALL are left out when nothing
/// matched. `found` is ascending. The tag is an IMAP tag (no `"` or `\`), quoted as it is.
fn esearch_response(
    tag: &str,
    uid: bool,
    options: &[String],
    found: &[u32],
    modseq: Option<NonZeroU64>,
) -> String {
    let modseq = modseq.filter(|_| !found.is_empty()).map(NonZeroU64::get);
    esearch_line(tag, uid, options, found, modseq)
}

/// The ESEARCH line of SEARCH and of ESORT (RFC 5267 §3.2, `numbers` in sort order there):
/// MIN and MAX are the first and last of `numbers`, ALL its runs that ascend by one, MODSEQ
/// when given.
pub(super) fn esearch_line(
    tag: &str,
    uid: bool,
    options: &[String],
    numbers: &[u32],
    modseq: Option<u64>,
) -> String {
    let wants =
        |name: &str| options.is_empty() && name == "ALL" || options.iter().any(|o| o == name);
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    if let (Some(min), true) = (numbers.first(), wants("MIN")) {
        line.push_str(&format!(" MIN {min}"));
    }
    if let (Some(max), true) = (numbers.last(), wants("MAX")) {
        line.push_str(&format!(" MAX {max}"));
    }
    if wants("COUNT") {
        line.push_str(&format!(" COUNT {}", numbers.len()));
    }
    if !numbers.is_empty() && wants("ALL") {
        let set: Vec<String> = uid_ranges(numbers)
            .into_iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}:{b}")
                }
            })
            .collect();
        line.push_str(&format!(" ALL {}", set.join(",")));
    }
    if let Some(modseq) = modseq {
        line.push_str(&format!(" MODSEQ {modseq}"));
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_save_keeps() {
        let options = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let found = [3, 5, 9];
        assert_eq!(saved_result(&options(&["SAVE"]), &found), found);
        assert_eq!(saved_result(&options(&["SAVE", "MIN"]), &found), [3]);
        assert_eq!(
            saved_result(&options(&["MAX", "SAVE", "MIN"]), &found),
            [3, 9]
        );
        assert_eq!(
            saved_result(&options(&["SAVE", "MIN", "COUNT"]), &found),
            found
        );
        assert_eq!(
            saved_result(&options(&["SAVE", "MAX", "ALL"]), &found),
            found
        );
        assert_eq!(saved_result(&options(&["SAVE", "MIN", "MAX"]), &[4]), [4]);
        assert!(saved_result(&options(&["SAVE", "MIN"]), &[]).is_empty());
    }

    #[test]
    fn esearch_responses() {
        let all = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            esearch_response("a1", true, &all(&["MIN", "MAX", "COUNT"]), &[3, 5, 9], None),
            "* ESEARCH (TAG \"a1\") UID MIN 3 MAX 9 COUNT 3\r\n"
        );
        assert_eq!(
            esearch_response("a2", false, &[], &[1, 2, 3, 7], None),
            "* ESEARCH (TAG \"a2\") ALL 1:3,7\r\n"
        );
        assert_eq!(
            esearch_response("a3", false, &all(&["MIN", "COUNT", "ALL"]), &[], None),
            "* ESEARCH (TAG \"a3\") COUNT 0\r\n"
        );
        assert_eq!(
            esearch_response("a4", false, &all(&["MAX"]), &[4], NonZeroU64::new(17)),
            "* ESEARCH (TAG \"a4\") MAX 4 MODSEQ 17\r\n"
        );
    }
}
