//! The one wait loop: polls with backoff and jitter until ready or a timeout, with a message
//! that says what was waited for. Every wait in l5d-ecs goes through [`poll_with`]: AWS
//! resources settling, IAM propagation, creates that may go again, and `verify`'s checks.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::output::Output;

/// The outcome of one look at something being waited for.
pub enum Poll<T> {
    Ready(T),
    /// Not yet, and why (shown if the wait times out).
    Pending(String),
}

/// How a poll spaces its looks: from `first`, growing by half each time up to `max`, each
/// with jitter.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// One per kind of wait, each with a cap near a tenth of how long AWS usually takes for it:
/// polled from a short first interval, a wait ends at most about one cap after AWS would
/// accept the call (the overshoot the benchmark measures), and a long wait does not burn the
/// account's API rate. The cap is jittered too, so concurrent waits spread out.
impl Backoff {
    /// A new IAM role or instance profile reaching EC2, Auto Scaling or Scheduler: about 10 s
    /// on a fresh account, and it holds up the first node. The cap plus one call's round trip
    /// stays under a second after AWS would accept (measured by bench/up.sh's overshoot row).
    pub const IAM: Backoff = Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(600),
    };
    /// Terminated instances' network interfaces letting go of a security group: about 30 s.
    pub const NETWORK: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(2),
    };
    /// An ASG's deletion (and its launch configuration then free): about 20 s.
    pub const SCALING: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_millis(1500),
    };
    /// ECS settling: services draining, a cluster emptying, tasks starting (seconds to a
    /// minute).
    pub const ECS: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(2),
    };
    /// Instances starting, stopping and joining the cluster: 30 s to a minute or two.
    pub const INSTANCES: Backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(3),
    };
}

/// A wait that ran out of time: what it waited for, for how long, how many looks it took, and
/// what the last one saw. [`poll_with`] fails with it (as an `anyhow::Error` that
/// `downcast_ref` finds), so a caller may carry on after a timeout or word it its own way.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {} waiting for {what} (last seen: {last})", format_duration(*.timeout))]
pub struct TimedOut {
    pub what: String,
    pub timeout: Duration,
    pub looks: u32,
    pub last: String,
}

/// Polls `check` until it is ready, spaced as `backoff`, failing after `timeout` with a
/// message that says what was waited for and what was last seen.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, backoff: Backoff, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    poll_with(what, timeout, backoff, None, check).await
}

/// As [`poll`], with the given backoff; with `report`, the first time `check` is not ready a
/// progress line says what is waited for and why, so a wait of seconds is never silent.
pub async fn poll_with<T, F, Fut>(
    what: &str,
    timeout: Duration,
    backoff: Backoff,
    report: Option<&Output>,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = backoff.first;
    let mut looks = 0;
    loop {
        looks += 1;
        let last = match check().await? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(why) => why,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                what: what.to_owned(),
                timeout,
                looks,
                last,
            }
            .into());
        }
        match report {
            Some(out) if looks == 1 => out.progress(format!(
                "waiting up to {} for {what}: {last}",
                format_duration(timeout)
            )),
            _ => tracing::debug!(what, last, looks, "waiting"),
        }
        tokio::time::sleep(jitter(delay).min(deadline - now)).await;
        delay = (delay * 3 / 2).min(backoff.max);
    }
}

/// Between 50% and 100% of `d`, so that concurrent waiters do not poll in lock step.
fn jitter(d: Duration) -> Duration {
    // Without a random number (the system's generator failed) the wait is just not jittered.
    let random = getrandom::u32().unwrap_or(u32::MAX);
    d.mul_f64(0.5 + f64::from(random) / f64::from(u32::MAX) / 2.0)
}

pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 3600 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else if secs > 0 {
        format!("{secs}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_times_out_naming_what_it_waited_for() {
        let err = poll(
            "the thing",
            Duration::from_millis(50),
            Backoff::ECS,
            || async { Ok(Poll::<()>::Pending("still pending".into())) },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out after 50ms waiting for the thing (last seen: still pending)"
        );
        let timed_out = err.downcast_ref::<TimedOut>().unwrap();
        assert!(timed_out.looks >= 2, "{timed_out:?}");
    }

    #[tokio::test]
    async fn an_error_of_the_check_ends_the_wait_at_once() {
        let mut looks = 0;
        let err = poll("the thing", Duration::from_secs(5), Backoff::ECS, || {
            looks += 1;
            async { Err::<Poll<()>, _>(anyhow::anyhow!("refused")) }
        })
        .await
        .unwrap_err();
        assert_eq!((err.to_string(), looks), ("refused".to_owned(), 1));
        assert!(err.downcast_ref::<TimedOut>().is_none());
    }

    #[test]
    fn jitter_keeps_between_half_and_all_of_the_delay() {
        let d = Duration::from_millis(1000);
        for _ in 0..100 {
            let j = jitter(d);
            assert!(j >= d / 2 && j <= d, "{j:?}");
        }
    }

    #[tokio::test]
    async fn poll_returns_when_ready() {
        let mut n = 0;
        let v = poll("n to reach 2", Duration::from_secs(5), Backoff::ECS, || {
            n += 1;
            let n = n;
            async move {
                Ok(if n >= 2 {
                    Poll::Ready(n)
                } else {
                    Poll::Pending(format!("n={n}"))
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 2);
    }

    #[test]
    fn durations_format_with_units() {
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
