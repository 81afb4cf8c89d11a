//! Data loss prevention (`dlp.enable`, `dlp.icapUrl`): every outgoing message — sent by a
//! logged-in client, or relayed to another domain (which only logged-in and whitelisted
//! clients may) — goes to the DLP service by ICAP `REQMOD`, as an upload, before it is queued.
//!
//! - The service names a rule or threat, blocks it (a non-2xx page) or changes it:
//!   `550 5.7.1`, with the name it gave.
//! - The service cannot be asked (down, an error status, garbled, slower than
//!   [`DLP_TIMEOUT`]): `451 4.7.1`; nothing leaves unchecked, the client tries again.

use std::time::{Duration, Instant};

use crate::scan::icap::{self, IcapUrl, Method, Subject};

use super::Verdict;

/// The longest the service may take for one message, connecting included.
pub const DLP_TIMEOUT: Duration = Duration::from_secs(60);

/// The DLP service's verdict on `message`.
pub async fn check(url: &IcapUrl, hostname: &str, message: &[u8]) -> Verdict {
    let started = Instant::now();
    let subject = Subject {
        host: hostname,
        id: "message.eml",
    };
    let result = icap::scan(url, Method::Reqmod, subject, message, DLP_TIMEOUT).await;
    let us = started.elapsed().as_micros();
    let why = match result {
        Ok(icap::Finding::Clean) => {
            tracing::debug!(rule = "dlp", size = message.len(), us, "passed");
            return Verdict::Accept;
        }
        Ok(icap::Finding::Infected(name)) => name,
        Ok(icap::Finding::Blocked(why)) => why,
        Err(err) => {
            tracing::warn!(
                stage = "data",
                rule = "dlp",
                us,
                "the DLP service cannot be asked: {err}"
            );
            return Verdict::tempfail(
                451,
                [4, 7, 1],
                "Data loss prevention check unavailable, please try again later",
            );
        }
    };
    let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
    tracing::info!(stage = "data", rule = "dlp", verdict = %why, us, "refused");
    Verdict::reject(
        550,
        [5, 7, 1],
        format!("Message refused by the data loss prevention policy ({why})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_service_that_is_not_there_is_451() {
        // A port just closed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = IcapUrl::parse(&format!("icap://127.0.0.1:{port}/dlp")).unwrap();
        match check(&url, "mx.test", b"m").await {
            Verdict::TempFail(reply) => {
                assert_eq!((reply.code, reply.enhanced), (451, Some([4, 7, 1])))
            }
            other => panic!("{other:?}"),
        }
    }
}
