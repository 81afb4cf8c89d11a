//! The virus check of every message, inbound and outgoing (`antivirus.clamav`: clamd by
//! `INSTREAM`; `antivirus.kaspersky`: an ICAP service by `RESPMOD`), at the end of the data.
//! Each scanner that is on sees the whole message (CRLF form, as received, before our trace
//! headers); clamd first.
//!
//! - Infected: [`Verdict::Quarantine`] — the sender gets `250`, the recipients a notice naming
//!   the scanner and what it found, with the original attached (`smtp::notice`).
//! - A scanner that cannot be asked (down, refusing, garbled, or slower than [`SCAN_TIMEOUT`]):
//!   `451 4.7.1`; the sender's server keeps the message and tries again, nothing is accepted
//!   unscanned.
//! - Larger than clamd's `StreamMaxLength`: `552 5.3.4`, for good — a retry would meet the same
//!   limit, and accepting it unscanned would make the limit a way past the check. clamd's limit
//!   should be at least `smtp.maxMessageSize` (docs/filters.md). An ICAP service applies its
//!   own limit and says what it decided (c-icap's virus_scan passes objects over its
//!   `MaxObjectSize` unscanned).

use std::time::{Duration, Instant};

use crate::scan::clamd::{self, ClamdAddress, ClamdError};
use crate::scan::icap::{self, IcapUrl, Method, Subject};
use crate::settings::AntivirusSettings;

use super::Verdict;

/// The longest a scanner may take for one message, connecting included.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(60);

/// The verdict of every scanner that is on.
pub async fn check(settings: &AntivirusSettings, hostname: &str, message: &[u8]) -> Verdict {
    if let Some(address) = &settings.clamav {
        let verdict = clamav(address, message).await;
        if verdict != Verdict::Accept {
            return verdict;
        }
    }
    match &settings.kaspersky {
        Some(url) => kaspersky(url, hostname, message).await,
        None => Verdict::Accept,
    }
}

async fn clamav(address: &ClamdAddress, message: &[u8]) -> Verdict {
    let started = Instant::now();
    let result = clamd::scan(address, message, SCAN_TIMEOUT).await;
    let us = started.elapsed().as_micros();
    match result {
        Ok(clamd::Finding::Clean) => {
            tracing::debug!(
                rule = "antivirus",
                scanner = "ClamAV",
                size = message.len(),
                us,
                "clean"
            );
            Verdict::Accept
        }
        Ok(clamd::Finding::Infected(threat)) => infected("ClamAV", &threat, us),
        Err(ClamdError::TooLarge) => {
            tracing::warn!(
                rule = "antivirus",
                scanner = "ClamAV",
                size = message.len(),
                "refused: the message is larger than clamd's StreamMaxLength (make it at least smtp.maxMessageSize)"
            );
            Verdict::reject(552, [5, 3, 4], "Message too large for the virus scanner")
        }
        Err(err) => unavailable("ClamAV", &err, us),
    }
}

async fn kaspersky(url: &IcapUrl, hostname: &str, message: &[u8]) -> Verdict {
    let started = Instant::now();
    let subject = Subject {
        host: hostname,
        id: "message.eml",
    };
    let result = icap::scan(url, Method::Respmod, subject, message, SCAN_TIMEOUT).await;
    let us = started.elapsed().as_micros();
    match result {
        Ok(icap::Finding::Clean) => {
            tracing::debug!(
                rule = "antivirus",
                scanner = "Kaspersky",
                size = message.len(),
                us,
                "clean"
            );
            Verdict::Accept
        }
        Ok(icap::Finding::Infected(threat)) => infected("Kaspersky", &threat, us),
        Ok(icap::Finding::Blocked(why)) => {
            tracing::info!(
                stage = "data",
                rule = "antivirus",
                scanner = "Kaspersky",
                why,
                us,
                "blocked: quarantined"
            );
            Verdict::Quarantine(format!("The virus scanner Kaspersky refused it: {why}"))
        }
        Err(err) => unavailable("Kaspersky", &err, us),
    }
}

fn infected(scanner: &str, threat: &str, us: u128) -> Verdict {
    tracing::info!(
        stage = "data",
        rule = "antivirus",
        scanner,
        threat,
        us,
        "infected: quarantined"
    );
    Verdict::Quarantine(format!("The virus scanner {scanner} found: {threat}"))
}

fn unavailable(scanner: &str, err: &dyn std::error::Error, us: u128) -> Verdict {
    tracing::warn!(
        stage = "data",
        rule = "antivirus",
        scanner,
        us,
        "the scanner cannot be asked: {err}"
    );
    Verdict::tempfail(
        451,
        [4, 7, 1],
        "Virus scanner unavailable, please try again later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn off_is_accept_and_a_scanner_that_is_not_there_is_451() {
        assert_eq!(
            check(&AntivirusSettings::default(), "mx.test", b"m").await,
            Verdict::Accept
        );
        let gone = AntivirusSettings {
            clamav: Some(ClamdAddress::Unix("/nonexistent/clamd.ctl".into())),
            kaspersky: None,
        };
        match check(&gone, "mx.test", b"m").await {
            Verdict::TempFail(reply) => {
                assert_eq!((reply.code, reply.enhanced), (451, Some([4, 7, 1])))
            }
            other => panic!("{other:?}"),
        }
    }
}
