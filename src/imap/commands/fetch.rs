//! FETCH and UID FETCH: flags and metadata from the view, everything else from the message
//! file (read and parsed on the blocking pool, a chunk of messages at a time, so a FETCH of a
//! whole folder streams out instead of piling up). Non-PEEK body fetches set \Seen, and a
//! FETCH that fails (a BINARY section that can't be decoded) sets it on none.

use std::num::NonZeroU64;
use std::sync::Arc;

use chrono::{FixedOffset, TimeZone};
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::core::{Literal, NString, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_codec::imap_types::response::{Code, Data};
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::IntoStatic;

use super::super::flagdata::flag_items;
use super::super::qresync;
use super::super::response::{encode_data, nz, other};
use super::super::selected::ViewMessage;
use super::super::sequence::resolve;
use super::super::state::{Done, Session};
use super::super::{cache, mime};
use crate::store::{to_wire_form, Recent};

/// Messages read and rendered per trip to the blocking pool.
const CHUNK: usize = 32;
/// Message bytes (wire size) a trip renders at most when the items read message text: a
/// batch of big messages would otherwise sit in memory whole, 32 at a time (a trip still
/// takes one message, however big).
const CHUNK_BYTES: u64 = 1024 * 1024;

/// What the items need beyond the index.
struct Plan {
    names: Vec<MessageDataItemName<'static>>,
    sets_seen: bool,
    uid: bool,
    modseq: bool,
    /// \Recent is part of FLAGS (not in IMAP4rev2, `Session::shows_recent`).
    recent: bool,
}

pub async fn fetch(
    session: &mut Session<'_>,
    set: SequenceSet,
    names: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    modifiers: Vec<FetchModifier>,
) -> std::io::Result<Done> {
    let names: Vec<MessageDataItemName<'static>> = match names {
        MacroOrMessageDataItemNames::Macro(m) => m
            .expand()
            .into_iter()
            .map(IntoStatic::into_static)
            .collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(names) => names,
    };
    let mut changed_since = None;
    let mut vanished = false;
    for modifier in &modifiers {
        match modifier {
            FetchModifier::ChangedSince(n) => changed_since = Some(n.get()),
            FetchModifier::Vanished => vanished = true,
        }
    }
    if vanished {
        // RFC 7162 §3.2.6: UID FETCH only, with CHANGEDSINCE, once QRESYNC is enabled.
        if !session.qresync {
            return Ok(Done::bad("QRESYNC is not enabled"));
        }
        if !uid || changed_since.is_none() {
            return Ok(Done::bad("VANISHED needs UID FETCH and CHANGEDSINCE"));
        }
    }
    let asks_modseq = names
        .iter()
        .any(|n| matches!(n, MessageDataItemName::ModSeq));
    if changed_since.is_some() || asks_modseq {
        session.condstore = true;
    }
    let condstore = session.condstore;
    let recent = session.shows_recent();
    let Some(selected) = session.selected() else {
        return Ok(Done::bad("Select a folder first"));
    };
    let plan = Plan {
        recent,
        sets_seen: !selected.read_only
            && names.iter().any(|n| {
                matches!(
                    n,
                    MessageDataItemName::BodyExt { peek: false, .. }
                        | MessageDataItemName::Binary { peek: false, .. }
                        | MessageDataItemName::Rfc822
                        | MessageDataItemName::Rfc822Text
                )
            }),
        uid,
        modseq: changed_since.is_some() || asks_modseq,
        names,
    };
    let mut positions = match resolve(&set, selected, uid) {
        Ok(positions) => positions,
        Err(_) => return Ok(Done::bad("Message number out of range")),
    };
    if let Some(since) = changed_since {
        positions.retain(|&i| selected.messages[i].meta.modseq > since);
        if vanished {
            send_vanished_since(session, &set, since).await?;
        }
    }
    if plan.sets_seen {
        // A FETCH that fails must not have changed flags (its NO says it failed, RFC 3501
        // §7.1.2): a BINARY section we can't decode fails it (RFC 3516 §4.3), so that is
        // known before \Seen is set, and then nothing is set and nothing sent.
        if let Some(cte) = undecodable(session, &positions, &plan).await? {
            return Ok(unknown_cte_failure(&cte));
        }
        mark_seen(session, &positions).await?;
    }
    let (missing, unknown_cte) =
        send_fetched(session, &positions, Arc::new(plan), condstore).await?;
    if let Some(cte) = unknown_cte {
        // RFC 3516 §4.3: a part whose encoding we can't undo fails the FETCH (a PEEK one
        // here, which changed nothing; the messages before it were sent, as Dovecot does).
        return Ok(unknown_cte_failure(&cte));
    }
    // A message whose file another session expunged meanwhile gets no response; the rest is
    // served and the FETCH succeeds (RFC 2180 §4.1.3, RFC 9051 §7.5.1 let a server omit
    // it). Its EXPUNGE comes when one may be sent (after this FETCH for UID FETCH, else at
    // the next command that allows it); EXPUNGEISSUED (RFC 5530) tells the client why.
    Ok(if missing {
        Done::ok_code(
            other("EXPUNGEISSUED"),
            "FETCH completed; some messages were expunged meanwhile",
        )
    } else {
        Done::ok("FETCH completed")
    })
}

/// `NO [UNKNOWN-CTE]` (RFC 3516 §4.3).
fn unknown_cte_failure(cte: &str) -> Done {
    Done::no_code(
        Code::UnknownCte,
        format!("Unknown Content-Transfer-Encoding {cte}"),
    )
}

/// The first Content-Transfer-Encoding among the BINARY sections `plan` asks of the messages
/// at `positions` that can't be decoded (None when there is none, or no BINARY item). Reads
/// the messages one at a time on the blocking pool and decodes nothing; a message whose file
/// is gone is skipped (it gets no response anyway).
async fn undecodable(
    session: &mut Session<'_>,
    positions: &[usize],
    plan: &Plan,
) -> std::io::Result<Option<String>> {
    let sections: Vec<Vec<std::num::NonZeroU32>> = plan
        .names
        .iter()
        .filter_map(|name| match name {
            MessageDataItemName::Binary { section, .. }
            | MessageDataItemName::BinarySize { section } => Some(section.clone()),
            _ => None,
        })
        .collect();
    if sections.is_empty() {
        return Ok(None);
    }
    let Some(selected) = session.selected() else {
        return Ok(None);
    };
    let paths: Vec<std::path::PathBuf> = positions
        .iter()
        .filter_map(|&i| Some(selected.messages.get(i)?.path.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        for path in &paths {
            let Ok(stored) = std::fs::read(path) else {
                continue;
            };
            let raw = to_wire_form(&stored);
            drop(stored);
            if let Err(unknown) = mime::binary_decodable(&raw, &sections) {
                return Some(unknown.0);
            }
        }
        None
    })
    .await
    .map_err(std::io::Error::other)
}

/// `* VANISHED (EARLIER)` for the UIDs of `set` expunged after `since` (UID FETCH's VANISHED
/// modifier): from the folder's expunge log, or, where it doesn't reach back, every UID of the
/// set not in the folder (RFC 7162 §3.2.6, §3.2.5.2).
async fn send_vanished_since(
    session: &mut Session<'_>,
    set: &SequenceSet,
    since: u64,
) -> std::io::Result<()> {
    let Some(selected) = session.selected() else {
        return Ok(());
    };
    let folder = selected.folder.clone();
    let logged = match tokio::task::spawn_blocking(move || folder.sync())
        .await
        .map_err(std::io::Error::other)?
    {
        Ok(fresh) => fresh.expunged_since(since),
        Err(err) => {
            tracing::warn!("reading the expunge log: {err}");
            None
        }
    };
    let Some(selected) = session.selected() else {
        return Ok(());
    };
    let known = qresync::ranges_of(
        set,
        selected.max_uid().max(selected.uid_next.saturating_sub(1)),
    );
    let ranges = qresync::vanished_earlier(selected, logged, &known, 0);
    for known_uids in qresync::sequence_sets(&ranges) {
        session.send_data(Data::Vanished {
            earlier: true,
            known_uids,
        });
    }
    Ok(())
}

impl Plan {
    /// Whether the items need the message text (not only the index or the cached header).
    fn reads_text(&self) -> bool {
        self.names.iter().any(|n| {
            matches!(
                n,
                MessageDataItemName::BodyExt { .. }
                    | MessageDataItemName::Body
                    | MessageDataItemName::BodyStructure
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Text
                    | MessageDataItemName::Binary { .. }
                    | MessageDataItemName::BinarySize { .. }
            )
        })
    }
}

/// One message's FETCH response, or why there is none.
enum Rendered {
    Wire(Vec<u8>),
    /// Its file is gone (expunged meanwhile).
    Missing,
    /// A BINARY section has an encoding we can't undo (RFC 3516 `UNKNOWN-CTE`).
    UnknownCte(String),
}

/// Renders the messages at `positions` a batch at a time on the blocking pool and sends
/// them as they are done: whether some had vanished, and the unknown encoding that stopped
/// it, if any.
async fn send_fetched(
    session: &mut Session<'_>,
    positions: &[usize],
    plan: Arc<Plan>,
    condstore: bool,
) -> std::io::Result<(bool, Option<String>)> {
    let reads_text = plan.reads_text();
    let mut missing = false;
    let mut rest = positions;
    while !rest.is_empty() {
        let Some(selected) = session.selected() else {
            break;
        };
        let take = if reads_text {
            batch_len(rest, |i| {
                selected.messages.get(i).map_or(0, |m| m.meta.size)
            })
        } else {
            rest.len().min(CHUNK)
        };
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let batch: Vec<(u32, ViewMessage)> = chunk
            .iter()
            .filter_map(|&i| Some((i as u32 + 1, selected.messages.get(i)?.clone())))
            .collect();
        let plan = plan.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            batch
                .iter()
                .map(|(seq, message)| render(*seq, message, &plan, condstore))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(std::io::Error::other)?;
        for wire in rendered {
            match wire {
                Rendered::Wire(wire) => session.conn.send(&wire),
                Rendered::Missing => missing = true,
                Rendered::UnknownCte(cte) => return Ok((missing, Some(cte))),
            }
        }
        session.flush_if_big().await?;
    }
    Ok((missing, None))
}

/// How many of `positions` go into one trip: at most `CHUNK`, and no more than `CHUNK_BYTES`
/// of message (`size` of a position) unless it is a single message.
fn batch_len(positions: &[usize], size: impl Fn(usize) -> u64) -> usize {
    let mut total = 0u64;
    let mut n = 0;
    for &i in positions.iter().take(CHUNK) {
        total = total.saturating_add(size(i));
        if n > 0 && total > CHUNK_BYTES {
            break;
        }
        n += 1;
    }
    n.max(1).min(positions.len())
}

/// Sets \Seen on the messages at `positions` that lack it (one index update).
async fn mark_seen(session: &mut Session<'_>, positions: &[usize]) -> std::io::Result<()> {
    let Some(selected) = session.selected() else {
        return Ok(());
    };
    let uids: Vec<u32> = positions
        .iter()
        .map(|&i| &selected.messages[i])
        .filter(|m| !m.meta.flags.seen)
        .map(|m| m.meta.uid)
        .collect();
    if uids.is_empty() {
        return Ok(());
    }
    let folder = selected.folder.clone();
    let result = tokio::task::spawn_blocking(move || folder.mark_seen(&uids))
        .await
        .map_err(std::io::Error::other)?;
    match result {
        Ok((fresh, changed)) => {
            if let Some(selected) = session.selected() {
                for update in changed {
                    selected.record(update.uid, update.flags, update.modseq);
                }
                let others = selected.apply(&fresh, Recent::NONE, false);
                super::idle::send_updates(session, others);
            }
        }
        Err(err) => tracing::warn!("setting \\Seen: {err}"),
    }
    Ok(())
}

/// One message's FETCH response. The message file is read only for what the cache
/// (imap::cache) doesn't hold, and then once.
fn render(seq: u32, message: &ViewMessage, plan: &Plan, condstore: bool) -> Rendered {
    let mut unknown_cte = None;
    match render_items(seq, message, plan, condstore, &mut unknown_cte) {
        _ if unknown_cte.is_some() => Rendered::UnknownCte(unknown_cte.unwrap_or_default()),
        Some(wire) => Rendered::Wire(wire),
        None => Rendered::Missing,
    }
}

/// [`render`]: None when the message file is gone, or a BINARY section's encoding is
/// unknown (then named in `unknown_cte`).
fn render_items(
    seq: u32,
    message: &ViewMessage,
    plan: &Plan,
    condstore: bool,
    unknown_cte: &mut Option<String>,
) -> Option<Vec<u8>> {
    let path = &message.path;
    let mut whole: Option<Arc<Vec<u8>>> = None;
    let mut raw = || -> std::io::Result<Arc<Vec<u8>>> {
        if let Some(raw) = &whole {
            return Ok(raw.clone());
        }
        let read = Arc::new(to_wire_form(&std::fs::read(path)?));
        whole = Some(read.clone());
        Ok(read)
    };
    let meta = &message.meta;
    let mut items = Vec::with_capacity(plan.names.len() + 2);
    // Items kept encoded by the cache, appended to the response as they are.
    let mut encoded: Vec<Arc<Vec<u8>>> = Vec::new();
    let mut has_uid = false;
    let mut has_flags = false;
    let mut has_modseq = false;
    for name in &plan.names {
        items.push(match name {
            MessageDataItemName::Flags => {
                has_flags = true;
                MessageDataItem::Flags(flag_items(&meta.flags, message.recent && plan.recent))
            }
            MessageDataItemName::Uid => {
                has_uid = true;
                MessageDataItem::Uid(nz(meta.uid))
            }
            MessageDataItemName::InternalDate => {
                MessageDataItem::InternalDate(internal_date(meta.internal_date))
            }
            MessageDataItemName::Rfc822Size => {
                MessageDataItem::Rfc822Size(u32::try_from(meta.size).unwrap_or(u32::MAX))
            }
            MessageDataItemName::ModSeq => {
                has_modseq = true;
                MessageDataItem::ModSeq(NonZeroU64::new(meta.modseq).unwrap_or(NonZeroU64::MIN))
            }
            MessageDataItemName::Envelope => {
                encoded.push(cache::envelope(path).ok()?);
                continue;
            }
            MessageDataItemName::Body => {
                encoded.push(cache::structure(path, false, &mut raw).ok()?);
                continue;
            }
            MessageDataItemName::BodyStructure => {
                encoded.push(cache::structure(path, true, &mut raw).ok()?);
                continue;
            }
            MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(nstring(raw().ok()?.to_vec())),
            MessageDataItemName::Rfc822Header => {
                MessageDataItem::Rfc822Header(nstring(cache::header_block(path).ok()?.to_vec()))
            }
            MessageDataItemName::Rfc822Text => MessageDataItem::Rfc822Text(nstring(
                mime::section_bytes(&raw().ok()?, Some(&Section::Text(None))),
            )),
            MessageDataItemName::BodyExt {
                section, partial, ..
            } => body_section(path, section, partial, &mut raw)?,
            MessageDataItemName::Binary {
                section, partial, ..
            } => {
                let decoded = mime::binary_section(&raw().ok()?, section);
                let data = cut(decoded.map_err(|e| *unknown_cte = Some(e.0)).ok()?, partial);
                // Encoded here: imap-types has no `<origin>` for BINARY, which Dovecot sends
                // (as for BODY) and a client fetching in pieces matches its answers by.
                encoded.push(Arc::new(binary_item(section, partial, &data)));
                continue;
            }
            MessageDataItemName::BinarySize { section } => {
                let decoded = mime::binary_section(&raw().ok()?, section);
                let size = decoded.map_err(|e| *unknown_cte = Some(e.0)).ok()?.len();
                MessageDataItem::BinarySize {
                    section: section.clone(),
                    size: u32::try_from(size).unwrap_or(u32::MAX),
                }
            }
        });
    }
    if plan.uid && !has_uid {
        items.push(MessageDataItem::Uid(nz(meta.uid)));
    }
    // \Seen set by this FETCH: tell the client (RFC 3501 §6.4.5).
    if plan.sets_seen && !has_flags {
        items.push(MessageDataItem::Flags(flag_items(
            &meta.flags,
            message.recent && plan.recent,
        )));
        has_flags = true;
    }
    if (plan.modseq || (condstore && has_flags)) && !has_modseq {
        items.push(MessageDataItem::ModSeq(
            NonZeroU64::new(meta.modseq).unwrap_or(NonZeroU64::MIN),
        ));
    }
    Some(fetch_response(seq, items, &encoded))
}

/// `BODY[section]<partial>` of the message at `path`; the top-level header comes from the
/// cache, anything else from the whole message (`raw`). None when the file is gone.
fn body_section(
    path: &std::path::Path,
    section: &Option<Section<'static>>,
    partial: &Option<(u32, std::num::NonZeroU32)>,
    raw: &mut dyn FnMut() -> std::io::Result<Arc<Vec<u8>>>,
) -> Option<MessageDataItem<'static>> {
    let top_header = matches!(
        section,
        Some(
            Section::Header(None)
                | Section::HeaderFields(None, _)
                | Section::HeaderFieldsNot(None, _)
        )
    );
    let source = if top_header {
        cache::header_block(path).ok()?
    } else {
        raw().ok()?
    };
    let data = mime::section_bytes(&source, section.as_ref());
    let (data, origin) = match partial {
        Some((offset, length)) => {
            let start = (*offset as usize).min(data.len());
            let end = start.saturating_add(length.get() as usize).min(data.len());
            (data[start..end].to_vec(), Some(*offset))
        }
        None => (data, None),
    };
    Some(MessageDataItem::BodyExt {
        section: section.clone(),
        origin,
        data: nstring(data),
    })
}

/// `* seq FETCH (...)`: the typed `items` through imap-codec, then the `encoded` ones (kept
/// encoded by the cache) as they are.
fn fetch_response(
    seq: u32,
    items: Vec<MessageDataItem<'static>>,
    encoded: &[Arc<Vec<u8>>],
) -> Vec<u8> {
    let mut wire = match Vec1::try_from(items) {
        Ok(items) => {
            let mut wire = encode_data(Data::Fetch {
                seq: nz(seq),
                items,
            });
            wire.truncate(wire.len().saturating_sub(3)); // ")\r\n"
            wire
        }
        Err(_) => format!("* {seq} FETCH (").into_bytes(),
    };
    for (i, item) in encoded.iter().enumerate() {
        if i > 0 || !wire.ends_with(b"(") {
            wire.push(b' ');
        }
        wire.extend_from_slice(item);
    }
    wire.extend_from_slice(b")\r\n");
    wire
}

/// `<offset.length>` of `data` (the whole when no partial is asked for).
fn cut(mut data: Vec<u8>, partial: &Option<(u32, std::num::NonZeroU32)>) -> Vec<u8> {
    if let Some((offset, length)) = partial {
        // In place: no second copy of the decoded section.
        let start = (*offset as usize).min(data.len());
        let end = start.saturating_add(length.get() as usize).min(data.len());
        data.truncate(end);
        data.drain(..start);
    }
    data
}

/// `BINARY[section]<origin> literal`: a literal8 (`~{n}`) when the data holds NUL (RFC 3516
/// §4.2), else an ordinary literal.
fn binary_item(
    section: &[std::num::NonZeroU32],
    partial: &Option<(u32, std::num::NonZeroU32)>,
    data: &[u8],
) -> Vec<u8> {
    let part: Vec<String> = section.iter().map(|n| n.to_string()).collect();
    let origin = partial.map_or(String::new(), |(offset, _)| format!("<{offset}>"));
    let tilde = if data.contains(&0) { "~" } else { "" };
    let mut wire = format!(
        "BINARY[{}]{origin} {tilde}{{{}}}\r\n",
        part.join("."),
        data.len()
    )
    .into_bytes();
    wire.extend_from_slice(data);
    wire
}

/// Message bytes as a literal; NUL (not allowed outside BINARY) becomes 0x80 as in Dovecot.
pub fn nstring(mut bytes: Vec<u8>) -> NString<'static> {
    for byte in bytes.iter_mut() {
        if *byte == 0 {
            *byte = 0x80;
        }
    }
    Literal::try_from(bytes)
        .map(NString::from)
        .unwrap_or(NString(None))
}

pub fn internal_date(seconds: i64) -> DateTime {
    let utc = FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!());
    let when = utc.timestamp_opt(seconds, 0).single().unwrap_or_else(|| {
        utc.timestamp_opt(0, 0)
            .single()
            .unwrap_or_else(|| unreachable!())
    });
    DateTime::unvalidated(when)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let half = CHUNK_BYTES / 2;
        let sizes = |list: Vec<u64>| move |i: usize| list[i];
        assert_eq!(batch_len(&[0, 1], sizes(vec![half, half])), 2);
        assert_eq!(batch_len(&[0, 1], sizes(vec![half, half + 1])), 1);
        assert_eq!(batch_len(&[0, 1], sizes(vec![5 * CHUNK_BYTES, 1])), 1);
        let many: Vec<usize> = (0..40).collect();
        assert_eq!(batch_len(&many, |_| 10), CHUNK);
        assert_eq!(batch_len(&many[..3], |_| 10), 3);
    }

    #[test]
    fn binary_items_use_literal8_only_for_nul() {
        let part = |n: &[u32]| -> Vec<std::num::NonZeroU32> {
            n.iter()
                .filter_map(|&n| std::num::NonZeroU32::new(n))
                .collect()
        };
        assert_eq!(
            binary_item(&part(&[1, 2]), &None, b"ab"),
            b"BINARY[1.2] {2}\r\nab"
        );
        let partial = Some((5, std::num::NonZeroU32::MIN));
        assert_eq!(
            binary_item(&part(&[3]), &partial, b"\0"),
            b"BINARY[3]<5> ~{1}\r\n\0"
        );
        assert_eq!(binary_item(&[], &None, b""), b"BINARY[] {0}\r\n");
        assert_eq!(
            cut(
                b"abcdef".to_vec(),
                &Some((4, std::num::NonZeroU32::MIN.saturating_add(9)))
            ),
            b"ef"
        );
        assert_eq!(
            cut(b"abc".to_vec(), &Some((9, std::num::NonZeroU32::MIN))),
            b""
        );
    }
}
