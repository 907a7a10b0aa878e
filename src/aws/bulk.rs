//! Calls that AWS does not batch (StopTask, DeregisterContainerInstance), made many at a time
//! but never too many. At 60 nodes, one after another they were most of `down`'s time.
//!
//! Throttling is the SDK's: each such call runs with the adaptive retry mode
//! ([`adaptive_retry!`]), whose client-side rate limiter is shared by every call of that
//! service and region in the process. The first throttling answer lowers the rate for all of
//! them at once, so a batch backs off together instead of each call hammering on alone.

use std::future::Future;

use futures::StreamExt;

/// Calls in flight at once: enough that 60 nodes take 4 rounds, few enough that a burst
/// stays under ECS's per-account rate for its mutating calls.
pub const IN_FLIGHT: usize = 16;

/// Runs `call` for every item, at most [`IN_FLIGHT`] at a time, and returns every outcome
/// (in the order they finished): a failed call never stops the others.
pub async fn each<T, R, F, Fut>(items: impl IntoIterator<Item = T>, call: F) -> Vec<R>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = R>,
{
    futures::stream::iter(items)
        .map(call)
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

/// The config override for a call of a batch: adaptive retries (see the module's note), as
/// many attempts as every other call.
macro_rules! adaptive_retry {
    ($service:ident) => {
        $service::config::Builder::default().retry_config(
            aws_config::retry::RetryConfig::adaptive().with_max_attempts($crate::aws::MAX_ATTEMPTS),
        )
    };
}
pub(crate) use adaptive_retry;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn never_more_than_the_bound_in_flight_and_every_item_done() {
        let now = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let done = each(0..100, |i| {
            let (now, most) = (&now, &most);
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                if i % 7 == 0 {
                    Err(i)
                } else {
                    Ok(i)
                }
            }
        })
        .await;
        assert_eq!(done.len(), 100, "a failure stops nothing");
        assert_eq!(done.iter().filter(|r| r.is_err()).count(), 15);
        assert_eq!(most.load(Ordering::SeqCst), IN_FLIGHT);
    }
}
