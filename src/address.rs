//! Mail address syntax shared by the configuration and the protocols.
//!
//! Lookups are case-insensitive in both parts (as Postfix and Dovecot do by default), and a
//! single trailing dot of the domain is dropped (`user@example.org.` is `user@example.org`).

use std::fmt;

/// A normalised `local@domain` address: both parts lowercase, no trailing dot, no quoting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

/// Why an address is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("no @ in the address")]
    NoDomain,
    #[error("more than one @ outside quotes")]
    ManyAt,
    #[error("empty local part")]
    EmptyLocal,
    #[error("invalid domain {0:?}")]
    BadDomain(String),
    #[error("local part {0:?} is not a plain dot-atom")]
    BadLocal(String),
}

impl Address {
    /// Parses an address as it appears in the configuration or an SMTP path (without `<>`).
    /// Quoted local parts are accepted only when their content is a plain dot-atom (so
    /// `"user"@d` equals `user@d`); anything else in quotes is refused, which closes the
    /// `"user@remote"@local` relay trick. `%` and `!` are not routing characters here: they are
    /// refused in local parts, so `user%remote@local` can never be relayed.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let (local, domain) = split_at_domain(text)?;
        let local = unquote(local);
        if local.is_empty() {
            return Err(AddressError::EmptyLocal);
        }
        if !is_dot_atom(local) || local.contains(['%', '!']) {
            return Err(AddressError::BadLocal(local.to_string()));
        }
        let domain =
            normalize_domain(domain).ok_or_else(|| AddressError::BadDomain(domain.into()))?;
        Ok(Address {
            local: local.to_lowercase(),
            domain,
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

fn split_at_domain(text: &str) -> Result<(&str, &str), AddressError> {
    let mut in_quote = false;
    let mut escaped = false;
    let mut at = None;
    for (index, ch) in text.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '@' if !in_quote => {
                if at.is_some() {
                    return Err(AddressError::ManyAt);
                }
                at = Some(index);
            }
            _ => {}
        }
    }
    let at = at.ok_or(AddressError::NoDomain)?;
    Ok((&text[..at], &text[at + 1..]))
}

fn unquote(local: &str) -> &str {
    local
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(local)
}

/// RFC 5322 dot-atom, with UTF-8 allowed (RFC 6532).
fn is_dot_atom(text: &str) -> bool {
    !text.starts_with('.')
        && !text.ends_with('.')
        && !text.contains("..")
        && text.chars().all(|ch| {
            ch.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(ch) || !ch.is_ascii()
        })
}

/// Lowercases a domain name and drops one trailing dot; `None` if it isn't a host name.
/// Address literals (`[127.0.0.1]`) are never local, so they are refused here.
pub fn normalize_domain(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.len() > 253 {
        return None;
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || !ch.is_ascii())
    };
    domain
        .split('.')
        .all(valid_label)
        .then(|| domain.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_trailing_dot() {
        let address = Address::parse("Alice@Example.ORG.").unwrap();
        assert_eq!(address.to_string(), "alice@example.org");
    }

    #[test]
    fn plain_quoted_local_part_is_unquoted() {
        assert_eq!(Address::parse("\"bob\"@d.test").unwrap().local(), "bob");
    }

    #[test]
    fn relay_tricks_are_refused() {
        for trick in [
            "\"user@remote\"@local.test",
            "user%remote@local.test",
            "remote!user@local.test",
            "user@remote@local.test",
            "user@[127.0.0.1]",
            "user",
            "user@",
            "@local.test",
        ] {
            assert!(Address::parse(trick).is_err(), "{trick} accepted");
        }
    }
}
