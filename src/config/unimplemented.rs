//! Settings whose behaviour this version does not have yet. Turning one on is refused — by
//! `icsmail check-config` (also `--static`, so the NixOS build fails) and at start-up — with a
//! line naming the key, instead of a server that silently ignores it. Their defaults are off,
//! so a configuration that leaves them alone is unaffected. docs/settings.md marks each one.

use super::model::Config;
use super::ConfigErrors;

/// The refusals of `config`: one line per setting it turns on that is not built yet.
pub fn refuse(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut refuse = |key: String, what: &str| {
        errors.push(format!(
            "{key}: {what} is not implemented in this version; leave it off"
        ))
    };
    // Every switch of this version is built; a new one that is not yet goes here as
    // `("key", config.its.switch, "what it does")`.
    let switches: [(&str, bool, &str); 0] = [];
    let _ = config;
    for (key, on, what) in switches {
        if on {
            refuse(key.into(), what);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse;

    fn refused(json: &str) -> Vec<String> {
        refuse(&parse(json).unwrap()).err().unwrap_or_default().0
    }

    #[test]
    fn what_works_is_not_refused() {
        assert!(refused("{}").is_empty());
        assert!(
            refused(r#"{"addressBook":{"enable":true,"baseDn":"dc=example,dc=org"}}"#).is_empty()
        );
        assert!(refused(
            r#"{"lists":{"whitelist":["192.0.2.0/24","example.org","a@b.test"],"blacklist":["192.0.2.1"]},"spam":{"dnsbl":["zen.example"]}}"#
        )
        .is_empty());
        assert!(refused(
            r#"{"dkim":{"selector":"s1","verify":true,"sign":true},"spam":{"greylist":{"enable":true,"keepDays":3}}}"#
        )
        .is_empty());
        assert!(refused(
            r#"{"antivirus":{"clamav":{"enable":true},"kaspersky":{"enable":true,"icapUrl":"icap://h/av"}},"dlp":{"enable":true,"icapUrl":"icap://h/dlp"}}"#
        )
        .is_empty());
    }
}
