//! Rate limits on what one client can repeat, so a flood from one place never slows everyone:
//! enrollment attempts per client address (a wrong enroll secret costs as much as a right one, so a
//! guesser learns nothing from timing) and, per device, event uploads and the events in them.
//! Over a limit the answer is `429` with `Retry-After`; devices honour it and keep what they did
//! not send in their outbox.
//!
//! GCRA buckets from `governor`, keyed, in memory: each replica limits what reaches it (a client
//! spread over replicas gets each one's allowance).

use crate::failure::Failure;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

/// The allowances (configurable for tests; the defaults suit a fleet behind few addresses).
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Enrollment attempts one client address may make per minute (and at once).
    pub enrollments_per_minute: u32,
    /// Event uploads (batches) one device may make per minute (and at once).
    pub uploads_per_minute: u32,
    /// Events one device may send per minute (and at once: at least one full batch).
    pub events_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> LimitSettings {
        // A device syncs once a minute and after launches; an outbox drained after a week offline
        // sends full batches back to back and is paced by Retry-After, losing nothing.
        LimitSettings { enrollments_per_minute: 30, uploads_per_minute: 120, events_per_minute: 6000 }
    }
}

/// The buckets.
#[derive(Debug)]
pub struct Limits {
    enrollments: DefaultKeyedRateLimiter<IpAddr>,
    uploads: DefaultKeyedRateLimiter<String>,
    events: DefaultKeyedRateLimiter<String>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least one"))
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Limits {
        let events = settings.events_per_minute.max(warden_api::MAX_EVENTS_PER_BATCH as u32);
        Limits {
            enrollments: RateLimiter::keyed(per_minute(settings.enrollments_per_minute)),
            uploads: RateLimiter::keyed(per_minute(settings.uploads_per_minute)),
            events: RateLimiter::keyed(per_minute(events)),
        }
    }

    /// One enrollment attempt from `client`, before its secret is looked at.
    pub fn enrollment(&self, client: IpAddr) -> Result<(), Failure> {
        self.enrollments.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Failure::too_many(
                "too_many_enrollments",
                "too many enrollment attempts from this address; try again later",
                wait.as_secs_f64().ceil() as u64,
            )
        })
    }

    /// One upload of `events` events by `device`.
    pub fn upload(&self, device: &str, events: usize) -> Result<(), Failure> {
        let key = device.to_owned();
        let clock = DefaultClock::default();
        if let Err(not_until) = self.uploads.check_key(&key) {
            let wait = not_until.wait_time_from(clock.now());
            return Err(Failure::too_many(
                "too_many_uploads",
                "this device uploads too often; its events stay queued and go with a later upload",
                wait.as_secs_f64().ceil() as u64,
            ));
        }
        let Some(n) = NonZeroU32::new(events as u32) else { return Ok(()) };
        match self.events.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Failure::too_many(
                "too_many_events",
                "this device sent more events than a minute allows; the rest stay queued",
                not_until.wait_time_from(clock.now()).as_secs_f64().ceil() as u64,
            )),
            // More than the bucket ever holds: cannot happen (it holds a full batch).
            Err(_) => Err(Failure::too_many("too_many_events", "too many events in one upload", 60)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_allowance_and_is_told_when_to_come_back() {
        let limits =
            Limits::new(LimitSettings { enrollments_per_minute: 3, uploads_per_minute: 2, events_per_minute: 1 });
        let (one, two): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        for _ in 0..3 {
            limits.enrollment(one).unwrap();
        }
        let refused = limits.enrollment(one).unwrap_err();
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=20).contains(&refused.retry_after.unwrap()), "{:?}", refused.retry_after);
        limits.enrollment(two).unwrap();

        // A full batch always fits the events bucket; the next one waits.
        limits.upload("dev_a", warden_api::MAX_EVENTS_PER_BATCH).unwrap();
        assert_eq!(limits.upload("dev_a", 10).unwrap_err().body.code, "too_many_events");
        let waits = limits.upload("dev_a", 0).unwrap_err();
        assert_eq!(waits.body.code, "too_many_uploads");
        limits.upload("dev_b", 5).unwrap();
    }
}
