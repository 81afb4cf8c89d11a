//! systemd readiness notification (`Type=notify`). Outside systemd these are no-ops.

use sd_notify::NotifyState;
use tracing::debug;

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload begins (systemd waits for the next `READY=1`, `Type=notify-reload` semantics).
pub fn reloading() {
    // systemd 253+ wants the monotonic time with it.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(err) = sd_notify::notify(states) {
        debug!("sd_notify failed: {err}");
    }
}
