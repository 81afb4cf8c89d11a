//! One mail transaction, from MAIL to the end of its data: what the core collects and the
//! inbound processing takes.

use crate::address::Address;
use crate::mailtext::LineEnds;

/// One mail transaction, from MAIL to the end of its data.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    /// The reverse path as given; empty for the null sender (bounces).
    pub mail_from: String,
    /// Accounts that receive the message (aliases expanded, duplicates removed).
    pub accounts: Vec<Address>,
    /// Remote recipients for the outbound queue, as given (relaying allowed by the policy).
    pub remote: Vec<String>,
    /// The forward paths as given, in order.
    pub rcpt_to: Vec<String>,
    pub smtputf8: bool,
    pub eight_bit: bool,
    /// Message data: CRLF line ends only (bare CR and LF were normalised), dot-unstuffed.
    pub body: Vec<u8>,
    /// BDAT: a CR at the end of one chunk waits for the first byte of the next.
    pub bdat_line_ends: LineEnds,
    /// BDAT was used (then DATA is not allowed in this transaction).
    pub chunking: bool,
    pub helo: String,
    pub esmtp: bool,
    /// The session was inside TLS (for the Received protocol name, RFC 3848).
    pub tls: bool,
    /// The sender logged in (RFC 3848).
    pub authenticated: bool,
    /// A policy verdict said to drop the message after accepting it.
    pub discard: bool,
    /// A policy verdict said to hand the recipients this notice instead of the message.
    pub quarantine: Option<String>,
}
