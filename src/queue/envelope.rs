//! The envelope of a queued message: who sent it, where it goes, how each recipient stands and
//! when it is tried next. Stored as human-readable JSON beside the message (docs/queue.md).

use serde::{Deserialize, Serialize};

/// Times are whole seconds since the Unix epoch in memory, RFC 3339 (UTC) in the JSON.
pub type Timestamp = i64;

/// What kind of message is queued: a user's message, or a delivery status notification this
/// server made (never bounced again: it has the null sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Message,
    Bounce,
}

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not tried yet.
    Pending,
    /// The last attempt failed temporarily (4xx, no answer); tried again later.
    Deferred,
    /// Accepted by the next hop (2xx): done.
    Delivered,
    /// Failed for good (5xx, or the lifetime ran out): the sender is told.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecipientState {
    /// The forward path as the client gave it (case kept: remote local parts are case-sensitive).
    pub address: String,
    pub status: Status,
    /// The last reply or error for this recipient, e.g. `550 5.1.1 user unknown`.
    #[serde(default)]
    pub reply: Option<String>,
    /// The host that gave that reply.
    #[serde(default)]
    pub remote_mta: Option<String>,
    /// A failed recipient is in a delivery status notification already sent or queued.
    #[serde(default)]
    pub notified: bool,
}

impl RecipientState {
    pub fn new(address: String) -> RecipientState {
        RecipientState {
            address,
            status: Status::Pending,
            reply: None,
            remote_mta: None,
            notified: false,
        }
    }

    /// Still to be delivered (pending or deferred).
    pub fn is_open(&self) -> bool {
        matches!(self.status, Status::Pending | Status::Deferred)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub id: String,
    pub kind: Kind,
    /// The reverse path; empty for the null sender (bounces).
    pub sender: String,
    pub recipients: Vec<RecipientState>,
    /// The client asked for SMTPUTF8.
    #[serde(default)]
    pub smtputf8: bool,
    /// Message size in bytes (CRLF form, as spooled).
    pub size: u64,
    /// When the message entered the queue; its lifetime counts from here.
    #[serde(with = "rfc3339")]
    pub created: Timestamp,
    /// Delivery attempts made so far.
    pub attempts: u32,
    #[serde(with = "rfc3339_opt", default)]
    pub first_attempt: Option<Timestamp>,
    #[serde(with = "rfc3339_opt", default)]
    pub last_attempt: Option<Timestamp>,
    /// Not tried before this time (a flush or a new message: now).
    #[serde(with = "rfc3339")]
    pub next_attempt: Timestamp,
    /// Minutes the message waits after its next failed attempt (starts at `queue.delayMin`).
    pub delay_minutes: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

impl Envelope {
    /// A new message, due at once.
    pub fn new(
        id: String,
        kind: Kind,
        sender: String,
        recipients: Vec<String>,
        size: u64,
        now: Timestamp,
        delay_min: u32,
    ) -> Envelope {
        Envelope {
            id,
            kind,
            sender,
            recipients: recipients.into_iter().map(RecipientState::new).collect(),
            smtputf8: false,
            size,
            created: now,
            attempts: 0,
            first_attempt: None,
            last_attempt: None,
            next_attempt: now,
            delay_minutes: delay_min,
            last_error: None,
        }
    }

    /// Recipients still to be delivered.
    pub fn open_recipients(&self) -> impl Iterator<Item = &RecipientState> {
        self.recipients.iter().filter(|r| r.is_open())
    }

    /// True when no recipient is left to deliver.
    pub fn is_finished(&self) -> bool {
        self.open_recipients().next().is_none()
    }

    /// Failed recipients the sender has not been told about yet.
    pub fn unnotified_failures(&self) -> Vec<&RecipientState> {
        self.recipients
            .iter()
            .filter(|r| r.status == Status::Failed && !r.notified)
            .collect()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn from_json(bytes: &[u8]) -> Result<Envelope, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Formats a timestamp as RFC 3339 UTC (`2026-11-25T12:00:00Z`).
pub fn format_time(time: Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(time, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| time.to_string())
}

/// Parses RFC 3339 (any offset).
pub fn parse_time(text: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

mod rfc3339 {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_time(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

mod rfc3339_opt {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_str(&super::format_time(*time)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse_time(&text).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_is_readable() {
        let mut env = Envelope::new(
            "ABC.1".into(),
            Kind::Message,
            "alice@example.test".into(),
            vec!["Bob@Remote.test".into()],
            42,
            1_800_000_000,
            180,
        );
        env.recipients[0].status = Status::Deferred;
        env.recipients[0].reply = Some("451 4.3.0 try later".into());
        let json = env.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.contains("\"nextAttempt\": \"2027-01-15T08:00:00Z\""),
            "{text}"
        );
        assert!(text.contains("\"status\": \"deferred\""), "{text}");
        assert!(text.contains("\"address\": \"Bob@Remote.test\""), "{text}");
        assert_eq!(Envelope::from_json(&json).unwrap(), env);
    }

    #[test]
    fn times_with_offsets_parse() {
        assert_eq!(parse_time("2027-01-15T09:00:00+01:00"), Some(1_800_000_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn finished_when_no_open_recipient() {
        let mut env = Envelope::new(
            "X".into(),
            Kind::Message,
            String::new(),
            vec!["a@b.test".into(), "c@d.test".into()],
            1,
            0,
            1,
        );
        assert!(!env.is_finished());
        env.recipients[0].status = Status::Delivered;
        env.recipients[1].status = Status::Failed;
        assert!(env.is_finished());
        assert_eq!(env.unnotified_failures().len(), 1);
    }
}
