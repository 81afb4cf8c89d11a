//! Content filters: what is done to a message's *content* once the policy has accepted it —
//! the authentication results of inbound mail (DKIM, SPF, DMARC), the subject recoding and
//! the DKIM signature of outgoing mail. The verdicts on content (antivirus, DLP) are rules of
//! the policy engine at the DATA stage (`crate::policy`); this module only rewrites. The order
//! of everything is in docs/filters.md.
pub mod authres;
pub mod keygen;
pub mod sign;
pub mod subject;
pub mod verify;
