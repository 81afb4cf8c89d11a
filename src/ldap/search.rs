//! One search over the book: the base (or the RootDSE), the scope, the filter, the attributes
//! asked for, the size and time limits (the client's, within the server's caps) and the
//! paged-results control (RFC 2696). Also compare, which reads entries the same way.

use std::hash::{Hash, Hasher};
use std::time::Instant;

use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapCompareRequest, LdapPartialAttribute, LdapResult, LdapResultCode, LdapSearchRequest,
    LdapSearchResultEntry, LdapSearchScope,
};

use super::access::Denial;
use super::bounds::{self, MAX_SIZE_LIMIT, MAX_TIME_LIMIT};
use super::dn::Dn;
use super::entries::{canonical, Attribute, Book, Entry};
use super::filter::{evaluate, fold, Truth};
use super::rootdse::root_dse;

/// What a search answers: the entries, then the done message with its controls.
#[derive(Debug)]
pub struct Outcome {
    pub entries: Vec<LdapSearchResultEntry>,
    pub result: LdapResult,
    pub controls: Vec<LdapControl>,
}

/// What the search may see, decided by the session.
pub struct View<'a> {
    pub book: &'a Book,
    /// Whether this connection may read the entries (the RootDSE is always readable).
    pub entries: Result<(), Denial>,
    /// StartTLS is offered (listed in the RootDSE).
    pub starttls: bool,
}

pub fn result(code: LdapResultCode, message: &str) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.to_string(),
        referral: Vec::new(),
    }
}

fn done(code: LdapResultCode, message: &str) -> Outcome {
    Outcome {
        entries: Vec::new(),
        result: result(code, message),
        controls: Vec::new(),
    }
}

pub fn run(view: &View<'_>, request: &LdapSearchRequest, controls: &[LdapControl]) -> Outcome {
    run_started(view, request, controls, Instant::now())
}

/// `run` for a search that started at `started`: its time limit counts from there (a
/// separate entry point so that a test can give a search whose time is already up).
pub(crate) fn run_started(
    view: &View<'_>,
    request: &LdapSearchRequest,
    controls: &[LdapControl],
    started: Instant,
) -> Outcome {
    if let Some(oid) = unknown_critical(controls) {
        return done(
            LdapResultCode::UnavailableCriticalExtension,
            &format!("control {oid} is not supported"),
        );
    }
    let Ok(base) = Dn::parse(&request.base) else {
        return done(LdapResultCode::InvalidDNSyntax, "the base is not a DN");
    };
    if let Err(err) = bounds::check_filter(&request.filter) {
        return done(LdapResultCode::AdminLimitExceeded, &err.to_string());
    }
    if base.is_root() && request.scope == LdapSearchScope::Base {
        let dse = root_dse(view.book, view.starttls);
        let mut entries = Vec::new();
        if evaluate(&request.filter, &dse) == Truth::True {
            // The RootDSE's attributes are operational, but a bare request gets them all.
            let all = request.attrs.iter().all(|a| a == "*" || a == "+");
            let attrs: &[String] = if all { &[] } else { &request.attrs };
            entries.push(result_entry(&dse, attrs, request.typesonly));
        }
        return Outcome {
            entries,
            result: result(LdapResultCode::Success, ""),
            controls: Vec::new(),
        };
    }
    if let Err(denial) = view.entries {
        return done(LdapResultCode::InsufficentAccessRights, denial.message());
    }
    let book = view.book;
    if !base.is_root() && book.find(&base).is_none() {
        let mut outcome = done(LdapResultCode::NoSuchObject, "no such entry");
        outcome.result.matcheddn = matched(book, &base);
        return outcome;
    }
    let in_scope = |entry: &&Entry| match request.scope {
        LdapSearchScope::Base => entry.dn == base,
        LdapSearchScope::OneLevel => entry.dn.is_child_of(&base),
        LdapSearchScope::Subtree => entry.dn.is_within(&base),
        LdapSearchScope::Children => entry.dn.is_within(&base) && entry.dn != base,
    };
    let deadline = started + time_limit(request.timelimit);
    let mut matching = Vec::new();
    let mut timed_out = false;
    for entry in book.entries().iter().filter(in_scope) {
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        if evaluate(&request.filter, entry) == Truth::True {
            matching.push(entry);
        }
    }
    let respond = |slice: &[&Entry], code, message: &str, controls| Outcome {
        entries: slice
            .iter()
            .map(|entry| result_entry(entry, &request.attrs, request.typesonly))
            .collect(),
        result: result(code, message),
        controls,
    };
    if timed_out {
        let slice = &matching[..matching.len().min(size_limit(request.sizelimit))];
        return respond(slice, LdapResultCode::TimeLimitExceeded, "", Vec::new());
    }
    if let Some((size, cookie)) = paging(controls, request.sizelimit) {
        let fingerprint = fingerprint(request);
        let Some(offset) = resume_at(cookie, fingerprint, matching.len()) else {
            return done(
                LdapResultCode::UnwillingToPerform,
                "the paged-results cookie is not one of this search",
            );
        };
        // Size 0 abandons the paged search (RFC 2696 §3).
        let page = usize::try_from(size).unwrap_or(0).min(MAX_SIZE_LIMIT);
        let end = offset.saturating_add(page).min(matching.len());
        let next = match end < matching.len() && page > 0 {
            true => cookie_for(end, fingerprint),
            false => Vec::new(),
        };
        let total = i64::try_from(matching.len()).unwrap_or(i64::MAX);
        let control = LdapControl::SimplePagedResults {
            size: total,
            cookie: next,
        };
        let slice = if page == 0 {
            &[][..]
        } else {
            &matching[offset..end]
        };
        return respond(slice, LdapResultCode::Success, "", vec![control]);
    }
    let limit = size_limit(request.sizelimit);
    if matching.len() > limit {
        return respond(
            &matching[..limit],
            LdapResultCode::SizeLimitExceeded,
            "",
            Vec::new(),
        );
    }
    respond(&matching, LdapResultCode::Success, "", Vec::new())
}

/// The client's size limit (0: none) within the server's cap.
fn size_limit(asked: i32) -> usize {
    match usize::try_from(asked) {
        Ok(asked) if asked > 0 => asked.min(MAX_SIZE_LIMIT),
        _ => MAX_SIZE_LIMIT,
    }
}

/// The client's time limit in seconds (0: none) within the server's cap.
fn time_limit(asked: i32) -> std::time::Duration {
    match u64::try_from(asked) {
        Ok(seconds) if seconds > 0 => std::time::Duration::from_secs(seconds).min(MAX_TIME_LIMIT),
        _ => MAX_TIME_LIMIT,
    }
}

/// The paged-results control, unless the size limit alone already bounds the search to one
/// page (RFC 2696 §3: then the control is ignored).
fn paging(controls: &[LdapControl], size_limit: i32) -> Option<(i64, &[u8])> {
    controls.iter().find_map(|control| match control {
        LdapControl::SimplePagedResults { size, cookie } => {
            let one_page = size_limit > 0 && i64::from(size_limit) <= *size;
            (!one_page).then_some((*size, cookie.as_slice()))
        }
        _ => None,
    })
}

/// The cookie is the offset of the next page and a fingerprint of the search it belongs to,
/// so the server keeps no state between pages (entries added in between shift the pages, as
/// on any server that does not snapshot).
fn cookie_for(offset: usize, fingerprint: u64) -> Vec<u8> {
    let mut cookie = (offset as u64).to_be_bytes().to_vec();
    cookie.extend_from_slice(&fingerprint.to_be_bytes());
    cookie
}

fn resume_at(cookie: &[u8], fingerprint: u64, len: usize) -> Option<usize> {
    if cookie.is_empty() {
        return Some(0);
    }
    let (offset, print) = cookie.split_at_checked(8)?;
    let offset = u64::from_be_bytes(offset.try_into().ok()?);
    let print = u64::from_be_bytes(print.try_into().ok()?);
    let offset = usize::try_from(offset).ok()?;
    (print == fingerprint && offset <= len).then_some(offset)
}

fn fingerprint(request: &LdapSearchRequest) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    Dn::parse(&request.base).ok().hash(&mut hasher);
    (request.scope.clone() as i32).hash(&mut hasher);
    format!("{:?}", request.filter).hash(&mut hasher);
    request.attrs.hash(&mut hasher);
    hasher.finish()
}

/// The first control the client marked critical that this server does not know.
fn unknown_critical(controls: &[LdapControl]) -> Option<&str> {
    controls.iter().find_map(|control| match control {
        LdapControl::Unknown {
            oid, criticality, ..
        } if *criticality => Some(oid.as_str()),
        _ => None,
    })
}

/// The nearest existing superior of a missing entry (RFC 4511 §4.1.9 matchedDN).
fn matched(book: &Book, dn: &Dn) -> String {
    book.entries()
        .iter()
        .filter(|entry| dn.is_within(&entry.dn))
        .max_by_key(|entry| entry.dn.depth())
        .map(|entry| entry.text.clone())
        .unwrap_or_default()
}

/// The entry with the attributes asked for: none or `*` for the user attributes, `+` for the
/// operational ones, `1.1` alone for none, names for those (unknown names are skipped).
pub fn result_entry(entry: &Entry, attrs: &[String], types_only: bool) -> LdapSearchResultEntry {
    let all_user = attrs.is_empty() || attrs.iter().any(|a| a == "*");
    let all_operational = attrs.iter().any(|a| a == "+");
    let named: Vec<&str> = attrs.iter().filter_map(|a| canonical(a)).collect();
    let wanted = |attribute: &Attribute, operational: bool| {
        (if operational {
            all_operational
        } else {
            all_user
        }) || named.contains(&attribute.name)
    };
    let user = entry.attributes.iter().map(|a| (a, false));
    let operational = entry.operational.iter().map(|a| (a, true));
    let attributes = user
        .chain(operational)
        .filter(|(attribute, operational)| wanted(attribute, *operational))
        .map(|(attribute, _)| LdapPartialAttribute {
            atype: attribute.name.to_string(),
            vals: match types_only {
                true => Vec::new(),
                false => attribute
                    .values
                    .iter()
                    .map(|v| v.as_bytes().to_vec())
                    .collect(),
            },
        })
        .collect();
    LdapSearchResultEntry {
        dn: entry.text.clone(),
        attributes,
    }
}

/// Compare (RFC 4511 §4.10) on an entry of the book.
pub fn compare(view: &View<'_>, request: &LdapCompareRequest) -> LdapResult {
    if let Err(denial) = view.entries {
        return result(LdapResultCode::InsufficentAccessRights, denial.message());
    }
    let Ok(dn) = Dn::parse(&request.dn) else {
        return result(LdapResultCode::InvalidDNSyntax, "not a DN");
    };
    let Some(entry) = view.book.find(&dn) else {
        return result(LdapResultCode::NoSuchObject, "no such entry");
    };
    let Some(name) = canonical(&request.atype) else {
        return result(LdapResultCode::UndefinedAttributeType, "unknown attribute");
    };
    let wanted = fold(&String::from_utf8_lossy(&request.val));
    match entry.values(name) {
        Some(values) if values.iter().any(|v| fold(v) == wanted) => {
            result(LdapResultCode::CompareTrue, "")
        }
        Some(_) => result(LdapResultCode::CompareFalse, ""),
        None => result(LdapResultCode::NoSuchAttribute, ""),
    }
}
