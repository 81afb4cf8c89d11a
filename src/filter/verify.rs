//! `dkim.verify`: the DKIM signatures (RFC 6376), the SPF result of the envelope (RFC 7208:
//! MAIL FROM, or the HELO name when MAIL FROM is null) and the DMARC result (RFC 7489) of an
//! inbound message, written as one `Authentication-Results:` field (RFC 8601) by mail-auth.
//! A verification problem never refuses mail: it is a result (`fail`, `temperror`,
//! `permerror`) in the field. The whole check is bounded by [`CHECK_TIMEOUT`].

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult,
    Error, MessageAuthenticator,
};

use super::authres;

/// The longest the checks of one message may take (every DNS lookup included); past it the
/// field says `temperror` for everything.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// The SMTP facts the checks need.
pub struct Envelope<'a> {
    /// The client's address.
    pub ip: IpAddr,
    /// Its EHLO/HELO name.
    pub helo: &'a str,
    /// The reverse path; empty for the null sender.
    pub mail_from: &'a str,
}

/// The `Authentication-Results:` field (CRLF-terminated, folded) for `message`, with
/// `hostname` as the authserv-id.
pub async fn authentication_results(
    authenticator: &MessageAuthenticator,
    message: &[u8],
    envelope: &Envelope<'_>,
    hostname: &str,
    timeout: Duration,
) -> String {
    // mail-auth parses what strangers send: should it ever panic, the message still gets its
    // field (and is kept) instead of the session dying with it.
    let checks = AssertUnwindSafe(check(authenticator, message, envelope, hostname)).catch_unwind();
    match tokio::time::timeout(timeout, checks).await {
        Ok(Ok(field)) => field,
        Ok(Err(_)) => {
            tracing::error!("the DKIM/SPF/DMARC checks panicked on a message");
            failed(hostname, "permerror", "verifier failure")
        }
        Err(_) => timed_out(hostname),
    }
}

async fn check(
    authenticator: &MessageAuthenticator,
    message: &[u8],
    envelope: &Envelope<'_>,
    hostname: &str,
) -> String {
    let helo = envelope.helo;
    // The SPF identity: MAIL FROM, or postmaster@<HELO> for the null sender (RFC 7208 §2.4).
    let spf_params = if envelope.mail_from.is_empty() {
        SpfParameters::verify_ehlo(envelope.ip, helo, hostname)
    } else {
        SpfParameters::verify_mail_from(envelope.ip, helo, hostname, envelope.mail_from)
    };
    let mail_from_domain = envelope
        .mail_from
        .rsplit_once('@')
        .map_or(helo, |(_, domain)| domain);
    let parsed = AuthenticatedMessage::parse(message);
    let Some(parsed) = parsed else {
        // No header to speak of: nothing to verify but the envelope.
        let spf = authenticator.verify_spf(spf_params).await;
        let results = with_spf(AuthenticationResults::new(hostname), &spf, envelope);
        return field(&results.to_string(), "dkim=none (no message header)", "");
    };
    // SPF and DKIM look up different names: at once, so a slow DNS costs the longer of the
    // two, not their sum. DMARC needs both.
    let (spf, raw_dkim) = tokio::join!(
        authenticator.verify_spf(spf_params),
        authenticator.verify_dkim(&parsed)
    );
    let dkim: Vec<DkimOutput<'_>> = raw_dkim.iter().map(body_hash_fails).collect();
    let dmarc = authenticator
        .verify_dmarc(DmarcParameters::new(&parsed, &dkim, mail_from_domain, &spf))
        .await;
    let header_from = parsed.from.first().map(String::as_str).unwrap_or("");
    let results = AuthenticationResults::new(hostname).with_dkim_results(&dkim, header_from);
    let results = with_spf(results, &spf, envelope);
    let no_signature = if dkim.is_empty() { "dkim=none" } else { "" };
    field(&results.to_string(), no_signature, &dmarc_result(&dmarc))
}

/// A body hash that does not match is a failed verification: `fail` (RFC 6376 §3.7:
/// PERMFAIL, "body hash did not verify"; RFC 8601 §2.7.1), where mail-auth says `neutral` as
/// Gmail does.
fn body_hash_fails<'a>(output: &'a DkimOutput<'_>) -> DkimOutput<'a> {
    match (output.result(), output.signature()) {
        (DkimResult::Neutral(err @ Error::Dkim(DkimError::FailedBodyHashMatch)), Some(sig)) => {
            DkimOutput::fail(err.clone()).with_signature(sig)
        }
        _ => output.clone(),
    }
}

/// The `dmarc=` result (RFC 7489 §11.2): `pass` when SPF or DKIM passed aligned; `fail` when
/// the domain publishes a policy and neither did (mail-auth leaves that `none` when neither
/// SPF nor DKIM passed at all); the lookup errors; `none` without a policy.
fn dmarc_result(dmarc: &DmarcOutput) -> String {
    let (spf, dkim) = (dmarc.spf_result(), dmarc.dkim_result());
    let has_record = dmarc.dmarc_record().is_some();
    let result = if *spf == DmarcResult::Pass || *dkim == DmarcResult::Pass {
        "pass"
    } else if [spf, dkim]
        .iter()
        .any(|r| matches!(r, DmarcResult::TempError(_)))
    {
        "temperror"
    } else if [spf, dkim]
        .iter()
        .any(|r| matches!(r, DmarcResult::PermError(_)))
    {
        "permerror"
    } else if has_record {
        "fail"
    } else {
        "none"
    };
    let mut out = format!("dmarc={result}");
    let domain = pvalue(dmarc.domain());
    if !domain.is_empty() {
        out.push_str(&format!(" header.from={domain}"));
    }
    if has_record {
        out.push_str(&format!(" policy.dmarc={}", dmarc.policy()));
    }
    out
}

/// A domain as a header value: only the characters a domain has (the From domain is the
/// sender's text).
fn pvalue(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect()
}

fn with_spf<'x>(
    results: AuthenticationResults<'x>,
    spf: &mail_auth::SpfOutput,
    envelope: &Envelope<'_>,
) -> AuthenticationResults<'x> {
    if envelope.mail_from.is_empty() {
        results.with_spf_ehlo_result(spf, envelope.ip, envelope.helo)
    } else {
        results.with_spf_mailfrom_result(spf, envelope.ip, envelope.mail_from, envelope.helo)
    }
}

/// The field from mail-auth's `authserv-id;\r\n\tresult;...` text, with `first` (a result it
/// has no builder for, such as `dkim=none`) put first after the authserv-id and `last` at the
/// end.
fn field(results: &str, first: &str, last: &str) -> String {
    let (id, rest) = results.split_once(';').unwrap_or((results, ""));
    let mut out = format!("Authentication-Results: {id}");
    if !first.is_empty() {
        out.push_str(";\r\n\t");
        out.push_str(first);
    }
    if !rest.is_empty() {
        out.push(';');
        out.push_str(rest);
    }
    if !last.is_empty() {
        out.push_str(";\r\n\t");
        out.push_str(last);
    }
    if first.is_empty() && rest.is_empty() && last.is_empty() {
        out.push_str("; none");
    }
    out.push_str("\r\n");
    out
}

/// The field when the checks took too long (a DNS server not answering).
fn timed_out(hostname: &str) -> String {
    failed(hostname, "temperror", "timed out")
}

/// The field giving every method `result` with the comment `why`.
fn failed(hostname: &str, result: &str, why: &str) -> String {
    field(
        hostname,
        &format!("dkim={result} ({why})"),
        &format!("spf={result} ({why});\r\n\tdmarc={result} ({why})"),
    )
}

/// The field when no resolver could be built (no readable resolv.conf).
pub fn unavailable(hostname: &str) -> String {
    failed(hostname, "temperror", "no DNS resolver")
}

/// The results of a field on one line, for the log: `dkim=pass spf=fail dmarc=fail`.
pub fn summary(field: &str) -> String {
    // Each result is on a line of its own, as `field` writes them.
    field
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .map(|token| token.trim_end_matches(';'))
        .filter(|token| token.contains('='))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `message` with its forged `Authentication-Results:` fields (our authserv-id) removed and
/// `field` on top; the number removed.
pub fn replace_results(message: &[u8], field: &str, hostname: &str) -> (Vec<u8>, usize) {
    let (cleaned, removed) = authres::remove_ours(message, hostname);
    (authres::prepend(field, &cleaned), removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_shapes() {
        assert_eq!(
            field("mx.test;\r\n\tspf=pass smtp.mailfrom=a@b", "dkim=none", ""),
            "Authentication-Results: mx.test;\r\n\tdkim=none;\r\n\tspf=pass smtp.mailfrom=a@b\r\n"
        );
        assert_eq!(
            field("mx.test", "", ""),
            "Authentication-Results: mx.test; none\r\n"
        );
        assert_eq!(
            timed_out("mx.test"),
            "Authentication-Results: mx.test;\r\n\tdkim=temperror (timed out);\r\n\
\tspf=temperror (timed out);\r\n\tdmarc=temperror (timed out)\r\n"
        );
    }

    #[test]
    fn dmarc_results() {
        use mail_auth::common::parse::TxtRecordParser;
        use mail_auth::dmarc::Dmarc;
        let record = std::sync::Arc::new(Dmarc::parse(b"v=DMARC1; p=reject").unwrap());
        let with_policy = DmarcOutput::new("Sender.Test\r\nX: y".into()).with_record(record);
        // A policy and nothing passed: fail (mail-auth's own builder says none).
        assert_eq!(
            dmarc_result(&with_policy),
            "dmarc=fail header.from=Sender.TestXy policy.dmarc=none"
        );
        let passed = with_policy.clone().with_dkim_result(DmarcResult::Pass);
        assert!(dmarc_result(&passed).starts_with("dmarc=pass "));
        let temp = with_policy.with_spf_result(DmarcResult::TempError(Error::ParseError));
        assert!(dmarc_result(&temp).starts_with("dmarc=temperror "));
        let no_policy = DmarcOutput::new("sender.test".into());
        assert_eq!(
            dmarc_result(&no_policy),
            "dmarc=none header.from=sender.test"
        );
        assert_eq!(dmarc_result(&DmarcOutput::default()), "dmarc=none");
    }

    #[test]
    fn one_line_summary() {
        assert_eq!(
            summary("Authentication-Results: mx.test;\r\n\tdkim=pass header.d=a;\r\n\tspf=fail (x; y) smtp.mailfrom=a;\r\n\tdmarc=none\r\n"),
            "dkim=pass spf=fail dmarc=none"
        );
    }

    #[test]
    fn replaces_forged_results() {
        let message = b"Authentication-Results: mx.test; dkim=pass\r\nSubject: s\r\n\r\nb\r\n";
        let (out, removed) = replace_results(
            message,
            "Authentication-Results: mx.test; dkim=none\r\n",
            "mx.test",
        );
        assert_eq!(removed, 1);
        assert_eq!(
            out,
            b"Authentication-Results: mx.test; dkim=none\r\nSubject: s\r\n\r\nb\r\n"
        );
    }

    /// With a resolver that answers nothing (a closed port), every check gives its error
    /// result and the field still comes, within the bound.
    #[tokio::test]
    async fn unanswered_dns_still_gives_one_field() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let authenticator = crate::dns::mail_authenticator(&[addr]).unwrap();
        let message =
            b"DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=s; h=from; bh=x; b=y\r\n\
From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n";
        let envelope = Envelope {
            ip: "192.0.2.1".parse().unwrap(),
            helo: "client.example.test",
            mail_from: "a@example.test",
        };
        let started = std::time::Instant::now();
        let field = authentication_results(
            &authenticator,
            message,
            &envelope,
            "mx.test",
            Duration::from_millis(1500),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            field.starts_with("Authentication-Results: mx.test;\r\n\t"),
            "{field}"
        );
        assert!(field.contains("dkim="), "{field}");
        assert!(field.ends_with("\r\n"));
        drop(socket);
    }
}
