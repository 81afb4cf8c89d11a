//! What the SMTP core keeps while a command waits for the policy's verdict, and what earlier
//! verdicts said to do with the session's messages.

use super::transaction::Transaction;
use crate::policy::{Destination, Verdict};

/// The name the client gave with EHLO or HELO.
#[derive(Debug, Clone)]
pub struct Helo {
    pub name: String,
    pub extended: bool,
}

/// A command waiting for its verdict.
pub(super) enum Pending {
    /// The connection itself: the greeting waits.
    Connect,
    Helo(Helo),
    /// MAIL, with the transaction it starts.
    Mail(Transaction),
    /// RCPT, with the forward path as given and where it leads.
    Rcpt {
        path: String,
        destination: Destination,
    },
}

/// What a verdict of `Discard` or `Quarantine` before DATA does to the messages to come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Handling {
    #[default]
    Deliver,
    Discard,
    Quarantine(String),
}

impl Handling {
    pub(super) fn apply(&self, tx: &mut Transaction) {
        match self {
            Handling::Deliver => {}
            Handling::Discard => tx.discard = true,
            Handling::Quarantine(notice) => tx.quarantine = Some(notice.clone()),
        }
    }

    pub(super) fn from_verdict(verdict: &Verdict) -> Handling {
        match verdict {
            Verdict::Discard => Handling::Discard,
            Verdict::Quarantine(notice) => Handling::Quarantine(notice.clone()),
            _ => Handling::Deliver,
        }
    }
}
