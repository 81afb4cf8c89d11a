//! The retry schedule of the seed's "Mail queue" section, as pure functions of the settings,
//! the envelope and the current time (docs/queue.md, "Retry schedule").
//!
//! - A new message is tried at once.
//! - After a failed attempt it waits at least its current delay. The delay starts at
//!   `queue.delayMin` and, after every failed attempt, grows by `queue.interval` (the runner's
//!   period: the seed's largest "delta"), never beyond `queue.delayMax`.
//! - The runner started by the timer every `queue.interval` minutes retries what has waited
//!   long enough, so the real wait is the delay plus up to one interval.
//! - Once the message has been in the queue for `queue.maxLifetime`, it is not tried again: the
//!   recipients still open fail and the sender gets a bounce.

use super::envelope::{Envelope, Timestamp};
use crate::settings::QueueSettings;

const MINUTE: i64 = 60;

/// The retry rules of `queue.*`: the delays in whole minutes (as envelopes keep them), the
/// lifetime in seconds (as timestamps count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub delay_min: u32,
    pub delay_max: u32,
    pub max_lifetime: i64,
    interval_minutes: u32,
}

impl Schedule {
    pub fn new(queue: &QueueSettings) -> Schedule {
        let minutes = |d: std::time::Duration| u32::try_from(d.as_secs() / 60).unwrap_or(u32::MAX);
        Schedule {
            delay_min: queue.delay_min_minutes,
            delay_max: queue.delay_max_minutes,
            max_lifetime: i64::try_from(queue.max_lifetime.as_secs()).unwrap_or(i64::MAX),
            interval_minutes: minutes(queue.interval),
        }
    }

    /// The delay after the next failure, given the one after the last (in minutes).
    pub fn grow(&self, delay_minutes: u32) -> u32 {
        delay_minutes
            .saturating_add(self.interval_minutes)
            .clamp(self.delay_min, self.delay_max)
    }

    /// When the message runs out of time.
    pub fn expires_at(&self, env: &Envelope) -> Timestamp {
        env.created.saturating_add(self.max_lifetime)
    }

    /// Its total time in the queue has reached `queue.maxLifetime`.
    pub fn is_expired(&self, env: &Envelope, now: Timestamp) -> bool {
        now >= self.expires_at(env)
    }

    /// It has waited long enough for another attempt.
    pub fn is_due(&self, env: &Envelope, now: Timestamp) -> bool {
        now >= env.next_attempt
    }

    /// Records an attempt that started at `started` (counts and first/last times).
    pub fn record_attempt(&self, env: &mut Envelope, started: Timestamp) {
        env.attempts = env.attempts.saturating_add(1);
        env.first_attempt.get_or_insert(started);
        env.last_attempt = Some(started);
    }

    /// After an attempt that left recipients open: wait the current delay (but not past the
    /// expiry, so the bounce is not late), then let the delay grow.
    pub fn defer(&self, env: &mut Envelope, now: Timestamp) {
        let delay = i64::from(env.delay_minutes.clamp(self.delay_min, self.delay_max)) * MINUTE;
        env.next_attempt = now.saturating_add(delay).min(self.expires_at(env));
        env.delay_minutes = self.grow(env.delay_minutes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Queue;
    use crate::queue::envelope::Kind;

    /// The schedule of `queue.*` set to `queue` (minutes, as in the file).
    fn from_config(queue: &Queue) -> Schedule {
        let minutes = |m: u32| std::time::Duration::from_secs(u64::from(m) * 60);
        Schedule::new(&QueueSettings {
            interval: minutes(queue.interval),
            delay_min_minutes: queue.delay_min,
            delay_max_minutes: queue.delay_max,
            max_lifetime: minutes(queue.max_lifetime),
            state_dir: Default::default(),
        })
    }

    fn seed() -> Schedule {
        from_config(&Queue::default())
    }

    fn envelope(now: Timestamp) -> Envelope {
        Envelope::new(
            "T".into(),
            Kind::Message,
            "a@b.test".into(),
            vec!["c@d.test".into()],
            10,
            now,
            seed().delay_min,
        )
    }

    #[test]
    fn new_message_is_due_at_once() {
        let env = envelope(1000);
        assert!(seed().is_due(&env, 1000));
        assert!(!seed().is_expired(&env, 1000));
    }

    #[test]
    fn seed_defaults_wait_180_210_240_270_300_300() {
        let schedule = seed();
        let mut env = envelope(0);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            schedule.record_attempt(&mut env, now);
            schedule.defer(&mut env, now);
            waits.push((env.next_attempt - now) / MINUTE);
            assert!(!schedule.is_due(&env, env.next_attempt - 1));
            assert!(schedule.is_due(&env, env.next_attempt));
            now = env.next_attempt + 7 * MINUTE; // the timer's delta
        }
        assert_eq!(waits, [180, 210, 240, 270, 300, 300]);
        assert_eq!(env.attempts, 6);
        assert_eq!(env.first_attempt, Some(0));
    }

    #[test]
    fn delay_never_exceeds_max_nor_falls_below_min() {
        let schedule = from_config(&Queue {
            interval: 100,
            delay_min: 5,
            delay_max: 50,
            max_lifetime: 1000,
        });
        assert_eq!(schedule.grow(5), 50);
        assert_eq!(schedule.grow(0), 50);
        assert_eq!(schedule.grow(u32::MAX), 50);
        let same = from_config(&Queue {
            interval: 1,
            delay_min: 3,
            delay_max: 3,
            max_lifetime: 10,
        });
        assert_eq!(same.grow(3), 3);
    }

    #[test]
    fn lifetime_counts_from_arrival_and_caps_the_wait() {
        let schedule = seed();
        let mut env = envelope(0);
        let lifetime = 5760 * MINUTE;
        assert!(!schedule.is_expired(&env, lifetime - 1));
        assert!(schedule.is_expired(&env, lifetime));
        schedule.defer(&mut env, lifetime - 10 * MINUTE);
        assert_eq!(env.next_attempt, lifetime, "the wait ends at the expiry");
    }
}
