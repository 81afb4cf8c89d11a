//! SORT, UID SORT (RFC 5256, SORT=DISPLAY of RFC 5957, ESORT's `RETURN` of RFC 5267 §3) and
//! THREAD, UID THREAD (RFC 5256): the search keys are evaluated as SEARCH does
//! (`imap::search`), then the matches are ordered or threaded by `imap::sort` from their
//! header keys, which `sort::keycache` remembers across commands.

use imap_codec::imap_types::core::{Charset, Vec1};
use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::response::Code;
use imap_codec::imap_types::search::SearchKey;

use super::super::cache;
use super::super::search::{check_charset, matches, SearchError, SearchScope};
use super::super::selected::ViewMessage;
use super::super::sort::{self, keycache, keys::SortKeys, thread};
use super::super::state::{Done, Session};
use super::search::{uses_modseq, Subject};

/// ESORT's RETURN options (RFC 5267 §3.1), and SAVE (SEARCHRES, RFC 5182); PARTIAL (RFC
/// 9394) is not offered.
const RETURN_OPTIONS: [&str; 5] = ["MIN", "MAX", "COUNT", "ALL", "SAVE"];

/// A message that matched: its number for the answer, and what ordering needs.
struct Found {
    number: u32,
    internal_date: i64,
    size: u64,
    uid: u32,
    modseq: u64,
    keys: std::sync::Arc<SortKeys>,
}

fn bad_charset() -> Done {
    let names = ["UTF-8", "US-ASCII"].map(|n| Charset::try_from(n).ok());
    Done::no_code(
        Code::BadCharset {
            allowed: names.into_iter().flatten().collect(),
        },
        "Unsupported charset",
    )
}

/// Runs the search on the blocking pool and gets the keys of what matched; with
/// `header_keys` false (a SORT by ARRIVAL and SIZE only, which the index answers) no message
/// file is opened for them, and every message has the same empty keys.
async fn found(
    session: &mut Session<'_>,
    criteria: Vec1<SearchKey<'static>>,
    uid: bool,
    header_keys: bool,
) -> std::io::Result<Result<Vec<Found>, Done>> {
    let Some(selected) = session.selected() else {
        return Ok(Err(Done::bad("Select a folder first")));
    };
    let messages: Vec<ViewMessage> = selected.messages.clone();
    let scope = SearchScope {
        max_seq: messages.len() as u32,
        max_uid: selected.max_uid(),
    };
    let keys: Vec<SearchKey<'static>> = criteria.into_inner();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        let no_keys = std::sync::Arc::new(SortKeys::default());
        for (index, message) in messages.iter().enumerate() {
            let seq = index as u32 + 1;
            let mut subject = Subject::new(seq, message);
            match matches(&keys, &mut subject, &scope) {
                Ok(true) => {}
                Ok(false) => continue,
                // A message that vanished meanwhile simply doesn't match.
                Err(SearchError::Io(_)) => continue,
                Err(err) => return Err(err),
            }
            let sort_keys = if header_keys {
                match keycache::keys(&message.path, || cache::header_block(&message.path)) {
                    Ok(keys) => keys,
                    Err(_) => continue,
                }
            } else {
                no_keys.clone()
            };
            found.push(Found {
                number: if uid { message.meta.uid } else { seq },
                internal_date: message.meta.internal_date,
                size: message.meta.size,
                uid: message.meta.uid,
                modseq: message.meta.modseq,
                keys: sort_keys,
            });
        }
        Ok(found)
    })
    .await
    .map_err(std::io::Error::other)?;
    Ok(outcome.map_err(|err| Done::bad(format!("Invalid search: {err}"))))
}

pub async fn sort(
    session: &mut Session<'_>,
    criteria: Vec1<SortCriterion>,
    charset: Charset<'static>,
    search: Vec1<SearchKey<'static>>,
    uid: bool,
) -> std::io::Result<Done> {
    let esort = session.search_return.take();
    let save = esort
        .as_ref()
        .is_some_and(|(_, options)| options.iter().any(|o| o == "SAVE"));
    if save {
        // A SORT that fails leaves an empty saved result (RFC 5182 §2.1).
        session.search_saved.clear();
    }
    if check_charset(Some(&charset)).is_err() {
        return Ok(bad_charset());
    }
    if let Some((_, options)) = &esort {
        if let Some(unknown) = options
            .iter()
            .find(|o| !RETURN_OPTIONS.contains(&o.as_str()))
        {
            return Ok(Done::bad(format!(
                "RETURN option {unknown} is not supported"
            )));
        }
    }
    // A MODSEQ key turns CONDSTORE on and adds the highest MODSEQ found (RFC 7162 §3.1.5).
    let with_modseq = search.as_ref().iter().any(uses_modseq);
    if with_modseq {
        session.condstore = true;
    }
    let header_keys = criteria
        .as_ref()
        .iter()
        .any(|c| !matches!(c.key, SortKey::Arrival | SortKey::Size));
    let found = match found(session, search, uid, header_keys).await? {
        Ok(found) => found,
        Err(done) => return Ok(done),
    };
    let modseq = found.iter().map(|f| f.modseq).max().filter(|_| with_modseq);
    let criteria = criteria.into_inner();
    let (numbers, uids) = tokio::task::spawn_blocking(move || {
        let entries: Vec<sort::Entry<'_>> = found
            .iter()
            .map(|f| sort::Entry {
                internal_date: f.internal_date,
                size: f.size,
                keys: &f.keys,
            })
            .collect();
        let order = sort::order(&entries, &criteria);
        let uids: Vec<u32> = order.iter().map(|&i| found[i].uid).collect();
        let numbers: Vec<u32> = order.into_iter().map(|i| found[i].number).collect();
        (numbers, uids)
    })
    .await
    .map_err(std::io::Error::other)?;
    if let (true, Some((_, options))) = (save, &esort) {
        session.search_saved = saved_result(options, &uids);
    }
    let line = match esort {
        // SAVE alone: the result is kept, and nothing sent (RFC 5182 §2.4).
        Some((_, options)) if save && options.iter().all(|o| o == "SAVE") => String::new(),
        Some((tag, options)) => {
            let options: Vec<String> = options.into_iter().filter(|o| o != "SAVE").collect();
            esort_response(&tag, uid, &options, &numbers, modseq)
        }
        None => {
            let mut line = String::from("* SORT");
            for n in &numbers {
                line.push(' ');
                line.push_str(&n.to_string());
            }
            if let Some(modseq) = modseq {
                line.push_str(&format!(" (MODSEQ {modseq})"));
            }
            line.push_str("\r\n");
            line
        }
    };
    session.conn.send(line.as_bytes());
    Ok(Done::ok("SORT completed"))
}

/// What `SORT RETURN (SAVE ...)` saves (UIDs, ascending, as every saved result): with only MIN
/// and/or MAX beside it, those messages — the first and last in sort order (RFC 5267 §3.1);
/// otherwise all that were found (RFC 5182 §2.4). `sorted` is in sort order.
fn saved_result(options: &[String], sorted: &[u32]) -> Vec<u32> {
    let has = |name: &str| options.iter().any(|o| o == name);
    let mut saved = if has("ALL") || has("COUNT") || !(has("MIN") || has("MAX")) {
        sorted.to_vec()
    } else {
        let first = sorted.first().filter(|_| has("MIN"));
        let last = sorted.last().filter(|_| has("MAX"));
        first.into_iter().chain(last).copied().collect()
    };
    saved.sort_unstable();
    saved.dedup();
    saved
}

/// `* ESEARCH (TAG "t") [UID] [MIN n] [MAX n] [COUNT n] [ALL set]` for a sort (RFC 5267
/// §3.2): MIN and MAX are the first and last in sort order, ALL is the sort order itself,
/// ranges only for runs that ascend by one. `RETURN ()` means ALL; MIN, MAX and ALL are left
/// out when nothing matched; MODSEQ (the highest of those found) ends it after a MODSEQ key.
fn esort_response(
    tag: &str,
    uid: bool,
    options: &[String],
    sorted: &[u32],
    modseq: Option<u64>,
) -> String {
    super::search::esearch_line(tag, uid, options, sorted, modseq)
}

pub async fn thread(
    session: &mut Session<'_>,
    algorithm: ThreadingAlgorithm<'static>,
    charset: Charset<'static>,
    search: Vec1<SearchKey<'static>>,
    uid: bool,
) -> std::io::Result<Done> {
    let references = match algorithm {
        ThreadingAlgorithm::References => true,
        ThreadingAlgorithm::OrderedSubject => false,
        ThreadingAlgorithm::Other(other) => {
            return Ok(Done::bad(format!(
                "Unknown threading algorithm {}",
                other.as_ref()
            )))
        }
    };
    if check_charset(Some(&charset)).is_err() {
        return Ok(bad_charset());
    }
    let found = match found(session, search, uid, true).await? {
        Ok(found) => found,
        Err(done) => return Ok(done),
    };
    let line = tokio::task::spawn_blocking(move || {
        let items: Vec<thread::Item<'_>> = found
            .iter()
            .map(|f| thread::Item {
                number: f.number,
                date: f.keys.sent.unwrap_or(f.internal_date),
                keys: &f.keys,
            })
            .collect();
        let forest = if references {
            thread::references(&items)
        } else {
            thread::ordered_subject(&items)
        };
        let mut line = String::from("* THREAD");
        if !items.is_empty() {
            line.push(' ');
            forest.write(&items, &mut line);
        }
        line.push_str("\r\n");
        line
    })
    .await
    .map_err(std::io::Error::other)?;
    session.conn.send(line.as_bytes());
    Ok(Done::ok("THREAD completed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esort_keeps_the_sort_order() {
        let all = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            esort_response(
                "a",
                false,
                &all(&["MIN", "MAX", "COUNT", "ALL"]),
                &[5, 6, 7, 2, 1, 3],
                None
            ),
            "* ESEARCH (TAG \"a\") MIN 5 MAX 3 COUNT 6 ALL 5:7,2,1,3\r\n"
        );
        assert_eq!(
            esort_response("b", true, &[], &[9, 4], Some(12)),
            "* ESEARCH (TAG \"b\") UID ALL 9,4 MODSEQ 12\r\n"
        );
        assert_eq!(
            esort_response("c", false, &all(&["MIN", "COUNT"]), &[], None),
            "* ESEARCH (TAG \"c\") COUNT 0\r\n"
        );
    }

    #[test]
    fn save_keeps_what_the_options_name() {
        let o = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(saved_result(&o(&["SAVE"]), &[7, 2, 5]), [2, 5, 7]);
        assert_eq!(saved_result(&o(&["SAVE", "MIN"]), &[7, 2, 5]), [7]);
        assert_eq!(
            saved_result(&o(&["SAVE", "MIN", "MAX"]), &[7, 2, 5]),
            [5, 7]
        );
        assert_eq!(
            saved_result(&o(&["SAVE", "MAX", "COUNT"]), &[7, 2, 5]),
            [2, 5, 7]
        );
        assert!(saved_result(&o(&["SAVE", "MIN"]), &[]).is_empty());
    }
}
