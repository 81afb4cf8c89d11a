//! Policies applied to SMTP clients: so far the per-IP sending rate limit (`ratelimit`).

pub mod ratelimit;

pub use ratelimit::RateLimiter;
