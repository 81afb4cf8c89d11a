//! LIST (RFC 3501 §6.3.8, with LIST-EXTENDED of RFC 5258, SPECIAL-USE of RFC 6154 and
//! LIST-STATUS of RFC 5819) and LSUB (§6.3.9).
//!
//! After login the input guard hands every LIST over whole (`guard::Step::List`), as
//! imap-codec parses no extended LIST; `parse` reads it and [`run_whole`] answers it. LSUB
//! (and a LIST before login, which the dispatcher refuses) still come through imap-next.
//!
//! What a LIST lists (`entries`, pure): the names of the account's folders, the levels of
//! the hierarchy without a folder of their own, and — with the SUBSCRIBED selection option —
//! subscribed names and their parents whether they exist or not. A name is listed when a
//! pattern matches it and it meets the selection criteria, or (RECURSIVEMATCH) when a
//! descendant that no pattern matches meets them; with RECURSIVEMATCH a listed name with a
//! descendant that meets them carries `CHILDINFO` (RFC 5258 §3.5).

mod parse;
// The LIST parser on its own, for the fuzz target `imap_list` (`crate::fuzzing`).
#[cfg(any(test, fuzzing))]
pub(crate) use parse::{parse, ListRequest as Request};

use std::collections::{BTreeMap, BTreeSet};

use imap_codec::imap_types::core::{Atom, QuotedChar, Tag};
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::Data;

use super::super::folders::{pattern_matches, FolderInfo, DELIMITER};
use super::super::response::{encode_data, Kind};
use super::super::state::{Done, Session};
use super::idle;
use super::mailbox::{blocking, folder_error, folders, status_response};
use super::names::{pattern_text, reference_text, wire_mailbox, wire_text};
use parse::{ListRequest, Selection};

/// Runs a LIST the guard took whole (`command`: tag, LIST, arguments, literals inline, CRLF)
/// and sends its completion, as `dispatch` and `Session::command` do for other commands.
pub async fn run_whole(session: &mut Session<'_>, command: &[u8]) -> std::io::Result<()> {
    let tag = parse::tag(command).and_then(|t| Tag::try_from(t.to_string()).ok());
    let done = match parse::parse(command) {
        Ok(request) => list(session, request).await,
        Err(why) => Done::bad(why),
    };
    if done.kind == Kind::Bad {
        tracing::info!(command = "LIST", "BAD: {}", done.text);
    }
    // As after every command: changes to the selected folder before the completion.
    if session.is_selected() {
        idle::refresh(session, true).await?;
    }
    match tag {
        Some(tag) => session.complete(tag, done),
        None => session.send_status(super::super::response::status(
            done.kind, None, done.code, &done.text,
        )),
    }
    Ok(())
}

/// A wire name as UTF-8 (`names::wire_text`: modified UTF-7 unless `utf8`).
fn decoded(wire: &str, utf8: bool) -> String {
    wire_text(wire, utf8)
}

/// The full pattern of `pattern` under `reference` ("" means none; `INBOX` a plain prefix).
fn full_pattern(reference: &str, pattern: &str) -> String {
    if reference.is_empty() || pattern.starts_with(DELIMITER) {
        pattern.to_string()
    } else if reference.ends_with(DELIMITER) {
        format!("{reference}{pattern}")
    } else {
        format!("{reference}{DELIMITER}{pattern}")
    }
}

async fn list(session: &mut Session<'_>, request: ListRequest) -> Done {
    let selection = request.selection;
    // RFC 5258 §3.1: RECURSIVEMATCH alone (or with only REMOTE) means nothing.
    if selection.recursive && !selection.subscribed && !selection.special_use {
        return Done::bad("RECURSIVEMATCH must not be the only selection option");
    }
    let utf8 = session.utf8_names();
    let mut reference = decoded(&request.reference, utf8);
    if reference.eq_ignore_ascii_case("INBOX") {
        reference = "INBOX".into();
    }
    let delimiter = QuotedChar::try_from(DELIMITER).ok();
    // LIST "" "": the delimiter and root (RFC 3501 §6.3.8); only in the basic form.
    if !request.extended && request.patterns.iter().all(String::is_empty) {
        session.send_data(Data::List {
            items: vec![FlagNameAttribute::Noselect],
            delimiter,
            mailbox: Mailbox::try_from(String::new()).unwrap_or(Mailbox::Inbox),
        });
        return Done::ok("LIST completed");
    }
    let patterns: Vec<String> = request
        .patterns
        .iter()
        .map(|p| full_pattern(&reference, &decoded(p, utf8)))
        .collect();
    let Some(folders) = folders(session) else {
        return Done::bad("Log in first");
    };
    let account_folders = folders.clone();
    let listed = blocking(move || Ok((folders.list()?, folders.subscriptions()?))).await;
    let (all, subscribed) = match listed {
        Ok(found) => found,
        Err(err) => return folder_error(err),
    };
    let shown = Shown::of(&request);
    for entry in entries(&patterns, selection, &shown, &all, &subscribed) {
        send_entry(session, &entry);
        let Some((names, appendlimit)) = &request.returns.status else {
            continue;
        };
        if !entry.status {
            continue;
        }
        let status = status_response(
            session,
            entry.name.clone(),
            account_folders.clone(),
            wire_mailbox(&entry.name, session.utf8_names()),
            names,
            *appendlimit,
        )
        .await;
        // A folder that went away meanwhile simply has no STATUS (RFC 5819 §2 lets a server
        // leave it out).
        if let Ok(wire) = status {
            session.conn.send(&wire);
        }
    }
    Done::ok("LIST completed")
}

/// Writes one `* LIST` line; imap-types has no place for the extended data item, so
/// `CHILDINFO` is added to the encoded line.
fn send_entry(session: &mut Session<'_>, entry: &Entry) {
    let items = entry
        .attributes
        .iter()
        .filter_map(|a| match *a {
            "\\Noselect" => Some(FlagNameAttribute::Noselect),
            other => Atom::try_from(other.trim_start_matches('\\').to_string())
                .ok()
                .map(FlagNameAttribute::from),
        })
        .collect();
    let mut wire = encode_data(Data::List {
        items,
        delimiter: QuotedChar::try_from(DELIMITER).ok(),
        mailbox: wire_mailbox(&entry.name, session.utf8_names()),
    });
    if !entry.childinfo.is_empty() && wire.ends_with(b"\r\n") {
        let options: Vec<String> = entry.childinfo.iter().map(|o| format!("\"{o}\"")).collect();
        let item = format!(" (CHILDINFO ({}))", options.join(" "));
        let at = wire.len() - 2;
        wire.splice(at..at, item.into_bytes());
    }
    session.conn.send(&wire);
}

/// Which attributes the answer carries: everything in the basic form (as Dovecot: children
/// and SPECIAL-USE roles; `\Subscribed` only when asked), only what was asked for in the
/// extended one (RFC 5258 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shown {
    extended: bool,
    subscribed: bool,
    children: bool,
    special_use: bool,
    status: bool,
}

impl Shown {
    fn of(request: &ListRequest) -> Shown {
        let r = &request.returns;
        let s = &request.selection;
        if !request.extended {
            return Shown {
                extended: false,
                subscribed: false,
                children: true,
                special_use: true,
                status: false,
            };
        }
        Shown {
            extended: true,
            // The SUBSCRIBED selection option implies the return option (RFC 5258 §3.1).
            subscribed: r.subscribed || s.subscribed,
            children: r.children,
            // As the SPECIAL-USE selection option implies the return option (RFC 6154 §5.1).
            special_use: r.special_use || s.special_use,
            status: r.status.is_some(),
        }
    }
}

/// One `* LIST` response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    attributes: Vec<&'static str>,
    /// The selection options a descendant meets (RECURSIVEMATCH's `CHILDINFO`).
    childinfo: Vec<&'static str>,
    /// A STATUS follows (LIST-STATUS): the folder exists and meets the criteria.
    status: bool,
}

/// A name LIST may list.
#[derive(Debug, Clone, Default)]
struct Candidate {
    /// A folder of its own (false: a level of the hierarchy, or only a subscribed name).
    exists: bool,
    /// In the account's folder list (a folder or a level).
    in_tree: bool,
    role: Option<&'static str>,
}

/// What LIST answers for the full `patterns` (pure: the folders and subscriptions given).
/// INBOX first, then by name.
fn entries(
    patterns: &[String],
    selection: Selection,
    shown: &Shown,
    all: &[FolderInfo],
    subscribed: &BTreeSet<String>,
) -> Vec<Entry> {
    let mut names: BTreeMap<String, Candidate> = BTreeMap::new();
    for folder in all {
        names.insert(
            folder.name.clone(),
            Candidate {
                exists: !folder.noselect,
                in_tree: true,
                role: folder.special_use.map(|r| r.attribute()),
            },
        );
    }
    if selection.subscribed {
        for name in subscribed {
            names.entry(name.clone()).or_default();
            for (at, _) in name.match_indices(DELIMITER) {
                names.entry(name[..at].to_string()).or_default();
            }
        }
    }
    let matched = |name: &str| patterns.iter().any(|p| pattern_matches(p, name));
    let meets = |name: &str, c: &Candidate| {
        let filtered = selection.subscribed || selection.special_use;
        (!filtered && c.in_tree)
            || (filtered
                && (!selection.subscribed || subscribed.contains(name))
                && (!selection.special_use || c.role.is_some()))
    };
    let below = |name: &str, other: &str| {
        other.len() > name.len()
            && other.starts_with(name)
            && other.as_bytes()[name.len()] == DELIMITER as u8
    };
    let mut criteria = Vec::new();
    if selection.subscribed {
        criteria.push("SUBSCRIBED");
    }
    if selection.special_use {
        criteria.push("SPECIAL-USE");
    }
    let mut out = Vec::new();
    for (name, candidate) in &names {
        if !matched(name) {
            continue;
        }
        let meets_itself = meets(name, candidate);
        // A descendant that meets the criteria: CHILDINFO on a listed name (as Dovecot 2.3);
        // a name that doesn't meet them itself is listed only for a descendant that no
        // pattern matches, which the answer would otherwise not show (RFC 5258 §3.5).
        let meeting: Vec<&String> = if selection.recursive {
            names
                .iter()
                .filter(|(other, c)| below(name, other) && meets(other, c))
                .map(|(other, _)| other)
                .collect()
        } else {
            Vec::new()
        };
        let childinfo = !meeting.is_empty();
        let unseen_child = meeting.iter().any(|other| !matched(other));
        if !meets_itself && !unseen_child {
            continue;
        }
        let mut attributes = Vec::new();
        if shown.subscribed && subscribed.contains(name) {
            attributes.push("\\Subscribed");
        }
        if !candidate.exists {
            attributes.push(if shown.extended {
                "\\NonExistent"
            } else {
                "\\Noselect"
            });
        }
        if shown.children {
            // Under SUBSCRIBED, subscribed names count as children too (as Dovecot 2.3).
            let children = names.iter().any(|(other, c)| {
                below(name, other)
                    && (c.in_tree || (selection.subscribed && subscribed.contains(other)))
            });
            attributes.push(if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
        }
        if shown.special_use {
            attributes.extend(candidate.role);
        }
        out.push(Entry {
            name: name.clone(),
            attributes,
            childinfo: if childinfo {
                criteria.clone()
            } else {
                Vec::new()
            },
            status: shown.status && candidate.exists && meets_itself,
        });
    }
    out.sort_by_key(|e| e.name != "INBOX");
    out
}

/// LSUB: the subscribed names `pattern` matches, with their unsubscribed parents as
/// `\Noselect` (RFC 3501 §6.3.9).
pub async fn lsub(
    session: &mut Session<'_>,
    reference: Mailbox<'static>,
    pattern: ListMailbox<'static>,
) -> Done {
    let (reference, pattern) = match (
        reference_text(&reference, session.utf8_names()),
        pattern_text(&pattern, session.utf8_names()),
    ) {
        (Ok(r), Ok(p)) => (r, p),
        (Err(done), _) | (_, Err(done)) => return done,
    };
    let full = full_pattern(&reference, &pattern);
    let Some(folders) = folders(session) else {
        return Done::bad("Log in first");
    };
    let subscribed = match blocking(move || Ok(folders.subscriptions()?)).await {
        Ok(subscribed) => subscribed,
        Err(err) => return folder_error(err),
    };
    let delimiter = QuotedChar::try_from(DELIMITER).ok();
    for (name, noselect) in lsub_names(&full, &subscribed) {
        let items = if noselect {
            vec![FlagNameAttribute::Noselect]
        } else {
            Vec::new()
        };
        session.send_data(Data::Lsub {
            items,
            delimiter,
            mailbox: wire_mailbox(&name, session.utf8_names()),
        });
    }
    Done::ok("LSUB completed")
}

/// What LSUB answers for `pattern`: the subscribed names it matches, and (RFC 3501 §6.3.9)
/// the unsubscribed parent of a subscribed name that the pattern matches while the name
/// itself doesn't (`p.%` and a subscribed `p.a.b` give `p.a`), marked \Noselect (true). INBOX
/// first, then by name.
fn lsub_names(pattern: &str, subscribed: &BTreeSet<String>) -> Vec<(String, bool)> {
    let mut names: BTreeMap<&str, bool> = BTreeMap::new();
    for name in subscribed {
        if pattern_matches(pattern, name) {
            names.insert(name, false);
            continue;
        }
        let parents = name.match_indices(DELIMITER).map(|(at, _)| &name[..at]);
        for parent in parents {
            if !subscribed.contains(parent) && pattern_matches(pattern, parent) {
                names.entry(parent).or_insert(true);
            }
        }
    }
    let mut listed: Vec<(String, bool)> = names
        .into_iter()
        .map(|(name, noselect)| (name.to_string(), noselect))
        .collect();
    listed.sort_by_key(|(name, _)| name != "INBOX");
    listed
}

#[cfg(test)]
mod tests;
