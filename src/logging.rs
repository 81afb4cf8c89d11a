//! Logging for every command: `tracing` to stderr, which is the journal under systemd.

/// What is logged without `RUST_LOG`. ldap3_proto logs every request it cannot decode at error
/// level: that is the client's fault, and the LDAP session logs it (info) as it closes the
/// connection.
const DEFAULT_FILTER: &str = "info,ldap3_proto=off";

/// Logs to stderr (the journal under systemd, which stamps lines itself); `RUST_LOG` filters.
pub fn init() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // A second call (several roles in one process) keeps the first subscriber.
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}
