//! Search filters evaluated against an entry (RFC 4511 §4.5.1.7) in three-valued logic: a
//! filter item on an attribute type this server does not know is Undefined, and `!` of
//! Undefined stays Undefined; only True selects an entry. Every attribute here has a
//! case-ignoring syntax (directoryString, IA5String, OIDs), so values are compared after
//! folding case and insignificant spaces. Approximate matching (`~=`) is equality;
//! `>=`/`<=` order the folded strings.

use ldap3_proto::proto::{LdapFilter, LdapMatchingRuleAssertion, LdapSubstringFilter};

use super::entries::{canonical, known_but_absent, Entry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Undefined,
}

impl Truth {
    fn from_bool(value: bool) -> Truth {
        if value {
            Truth::True
        } else {
            Truth::False
        }
    }
}

/// Whether `entry` matches `filter`. Recursion is bounded by the filter's depth, which the
/// caller has checked ([`super::bounds::check_filter`]).
pub fn evaluate(filter: &LdapFilter, entry: &Entry) -> Truth {
    match filter {
        LdapFilter::And(items) => {
            let mut result = Truth::True;
            for item in items {
                match evaluate(item, entry) {
                    Truth::False => return Truth::False,
                    Truth::Undefined => result = Truth::Undefined,
                    Truth::True => {}
                }
            }
            result
        }
        LdapFilter::Or(items) => {
            let mut result = Truth::False;
            for item in items {
                match evaluate(item, entry) {
                    Truth::True => return Truth::True,
                    Truth::Undefined => result = Truth::Undefined,
                    Truth::False => {}
                }
            }
            result
        }
        LdapFilter::Not(item) => match evaluate(item, entry) {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Undefined => Truth::Undefined,
        },
        LdapFilter::Equality(name, value) | LdapFilter::Approx(name, value) => {
            let wanted = fold(value);
            on_values(entry, name, |v| fold(v) == wanted)
        }
        LdapFilter::Substring(name, parts) => on_values(entry, name, |v| substring(v, parts)),
        LdapFilter::GreaterOrEqual(name, value) => {
            let bound = fold(value);
            on_values(entry, name, |v| fold(v) >= bound)
        }
        LdapFilter::LessOrEqual(name, value) => {
            let bound = fold(value);
            on_values(entry, name, |v| fold(v) <= bound)
        }
        LdapFilter::Present(name) => match canonical(name) {
            Some(name) => Truth::from_bool(entry.values(name).is_some_and(|v| !v.is_empty())),
            None => Truth::False,
        },
        LdapFilter::Extensible(assertion) => extensible(assertion, entry),
    }
}

/// Applies `test` to the values of attribute `name`: True when one passes, False when none
/// does (or the entry lacks a type it could have), Undefined for an unknown type.
fn on_values(entry: &Entry, name: &str, test: impl Fn(&str) -> bool) -> Truth {
    match canonical(name) {
        Some(name) => Truth::from_bool(
            entry
                .values(name)
                .is_some_and(|values| values.iter().any(|v| test(v))),
        ),
        None if known_but_absent(name) => Truth::False,
        None => Truth::Undefined,
    }
}

/// Matching rules by name or OID: the case-ignoring ones (what every attribute here uses) and
/// caseExactMatch; others are not supported (Undefined, RFC 4511 §4.5.1.7.7).
fn extensible(assertion: &LdapMatchingRuleAssertion, entry: &Entry) -> Truth {
    let exact = match assertion
        .matching_rule
        .as_deref()
        .map(str::to_ascii_lowercase)
    {
        None => false,
        Some(rule) => match rule.as_str() {
            "caseignorematch"
            | "2.5.13.2"
            | "caseignoreia5match"
            | "1.3.6.1.4.1.1466.109.114.2" => false,
            "caseexactmatch" | "2.5.13.5" | "caseexactia5match" | "1.3.6.1.4.1.1466.109.114.1" => {
                true
            }
            _ => return Truth::Undefined,
        },
    };
    let value = &assertion.match_value;
    let test = |candidate: &str| match exact {
        true => squash(candidate) == squash(value),
        false => fold(candidate) == fold(value),
    };
    match &assertion.type_ {
        Some(name) => on_values(entry, name, test),
        // No type: any attribute of the entry.
        None => Truth::from_bool(
            entry
                .attributes
                .iter()
                .any(|attribute| attribute.values.iter().any(|v| test(v))),
        ),
    }
}

/// `initial*any*…*final`, the parts in order and not overlapping.
fn substring(value: &str, parts: &LdapSubstringFilter) -> bool {
    let value = fold(value);
    let mut rest = value.as_str();
    if let Some(initial) = &parts.initial {
        match rest.strip_prefix(fold(initial).as_str()) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    for any in &parts.any {
        let any = fold(any);
        match rest.find(any.as_str()) {
            Some(at) => rest = &rest[at + any.len()..],
            None => return false,
        }
    }
    match &parts.final_ {
        Some(last) => rest.ends_with(fold(last).as_str()),
        None => true,
    }
}

/// Case folded, leading and trailing spaces dropped, inner runs of spaces made one (the
/// insignificant-space handling of RFC 4518 §2.6.1, without its Unicode tables).
pub fn fold(value: &str) -> String {
    squash(value).to_lowercase()
}

/// Insignificant spaces dropped, case kept (caseExactMatch).
fn squash(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}
