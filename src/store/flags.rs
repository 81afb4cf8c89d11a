//! Message flags as the store keeps them: the five permanent system flags and keywords, how a
//! change is applied to them, their words in the index file and the letters of a Maildir
//! `:2,` suffix.

use std::collections::BTreeSet;

/// Keywords a message may carry, so a client can't grow the index without bound.
pub const MAX_KEYWORDS: usize = 64;
/// Longest keyword accepted (a keyword is one word of an index line).
pub const MAX_KEYWORD_LENGTH: usize = 100;

/// The five system flags a message can carry permanently, plus keywords. `\Recent` is not
/// here: it belongs to a session, not to the message (RFC 3501 §2.3.2; see `Recent`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagSet {
    pub seen: bool,
    pub answered: bool,
    pub flagged: bool,
    pub deleted: bool,
    pub draft: bool,
    /// Keywords as the client spelled them first; compared case-insensitively.
    pub keywords: BTreeSet<String>,
}

/// A change to the flags of messages (IMAP STORE `+FLAGS`, `-FLAGS`, `FLAGS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagChange {
    Add(FlagSet),
    Remove(FlagSet),
    Replace(FlagSet),
}

impl FlagSet {
    /// True when the keyword is set (keywords are case-insensitive, RFC 3501 §2.3.2 / §9).
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
    }

    /// These flags after `change`. A change that would leave more than [`MAX_KEYWORDS`]
    /// keywords leaves the keywords as they are (the system flags still change).
    pub fn after(&self, change: &FlagChange) -> FlagSet {
        let mut new = match change {
            FlagChange::Replace(flags) => flags.clone(),
            FlagChange::Add(add) => FlagSet {
                seen: self.seen || add.seen,
                answered: self.answered || add.answered,
                flagged: self.flagged || add.flagged,
                deleted: self.deleted || add.deleted,
                draft: self.draft || add.draft,
                keywords: self.keywords_with(add),
            },
            FlagChange::Remove(remove) => FlagSet {
                seen: self.seen && !remove.seen,
                answered: self.answered && !remove.answered,
                flagged: self.flagged && !remove.flagged,
                deleted: self.deleted && !remove.deleted,
                draft: self.draft && !remove.draft,
                keywords: self
                    .keywords
                    .iter()
                    .filter(|k| !remove.has_keyword(k))
                    .cloned()
                    .collect(),
            },
        };
        if new.keywords.len() > MAX_KEYWORDS {
            new.keywords = self.keywords.clone();
        }
        new
    }

    /// These keywords and those of `add` that aren't among them (in any case).
    fn keywords_with(&self, add: &FlagSet) -> BTreeSet<String> {
        let mut out = self.keywords.clone();
        for keyword in &add.keywords {
            if !self.has_keyword(keyword) {
                out.insert(keyword.clone());
            }
        }
        out
    }

    /// The flags as words of an index line (`\Seen`, ..., then the keywords).
    pub(super) fn index_words(&self) -> impl Iterator<Item = &str> {
        [
            (self.seen, "\\Seen"),
            (self.answered, "\\Answered"),
            (self.flagged, "\\Flagged"),
            (self.deleted, "\\Deleted"),
            (self.draft, "\\Draft"),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, word)| word)
        .chain(self.keywords.iter().map(String::as_str))
    }

    /// Sets the flag an index word names (any other word is a keyword).
    pub(super) fn set_index_word(&mut self, word: &str) {
        match word {
            "\\Seen" => self.seen = true,
            "\\Answered" => self.answered = true,
            "\\Flagged" => self.flagged = true,
            "\\Deleted" => self.deleted = true,
            "\\Draft" => self.draft = true,
            keyword => {
                self.keywords.insert(keyword.to_string());
            }
        }
    }

    /// The flags of a Maildir file name's `:2,<letters>` suffix (Maildir spec: D, F, R, S, T),
    /// none when it has no suffix.
    pub(super) fn from_maildir_name(name: &str) -> FlagSet {
        let mut flags = FlagSet::default();
        if let Some((_, letters)) = name.split_once(":2,") {
            for letter in letters.chars() {
                match letter {
                    'D' => flags.draft = true,
                    'F' => flags.flagged = true,
                    'R' => flags.answered = true,
                    'S' => flags.seen = true,
                    'T' => flags.deleted = true,
                    _ => {}
                }
            }
        }
        flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(system: &str, keywords: &[&str]) -> FlagSet {
        FlagSet {
            seen: system.contains('S'),
            answered: system.contains('A'),
            flagged: system.contains('F'),
            deleted: system.contains('D'),
            draft: system.contains('R'),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
        }
    }

    #[test]
    fn changes_add_remove_and_replace() {
        let current = flags("SF", &["Work", "$Forwarded"]);
        assert_eq!(
            current.after(&FlagChange::Add(flags("D", &["work", "Home"]))),
            flags("SFD", &["Work", "$Forwarded", "Home"])
        );
        assert_eq!(
            current.after(&FlagChange::Remove(flags("S", &["WORK"]))),
            flags("F", &["$Forwarded"])
        );
        assert_eq!(
            current.after(&FlagChange::Replace(flags("A", &[]))),
            flags("A", &[])
        );
    }

    #[test]
    fn keywords_beyond_the_limit_are_not_added() {
        let full: Vec<String> = (0..MAX_KEYWORDS).map(|i| format!("k{i}")).collect();
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let current = flags("", &full);
        let added = current.after(&FlagChange::Add(flags("S", &["one-more"])));
        assert!(added.seen);
        assert_eq!(added.keywords, current.keywords);
        // Exactly at the limit is fine.
        let fewer = flags("", &full[1..]);
        let added = fewer.after(&FlagChange::Add(flags("", &["one-more"])));
        assert_eq!(added.keywords.len(), MAX_KEYWORDS);
    }

    #[test]
    fn index_words_round_trip() {
        let original = flags("SAFDR", &["$Junk", "Work"]);
        let mut read = FlagSet::default();
        for word in original.index_words() {
            read.set_index_word(word);
        }
        assert_eq!(read, original);
        assert_eq!(
            FlagSet::from_maildir_name("1.M1P1Q1.h:2,FRS"),
            flags("FAS", &[])
        );
        assert_eq!(FlagSet::from_maildir_name("1.M1P1Q1.h"), flags("", &[]));
    }
}
