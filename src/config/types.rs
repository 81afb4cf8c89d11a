//! Small value types of the configuration with their own checks at parse time.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A TCP port, 1–65535. Zero and larger values are rejected while parsing, so the error names
/// the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        match u16::try_from(value) {
            Ok(port) if port != 0 => Ok(Port(port)),
            _ => Err(serde::de::Error::custom(format!(
                "port must be between 1 and 65535, got {value}"
            ))),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The seed's three encryption modes: "Not use", "May use", "Use".
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// No STARTTLS; passwords in plain text.
    #[default]
    None,
    /// STARTTLS offered; plain-text logins still allowed.
    Optional,
    /// Logins only inside TLS.
    Required,
}
