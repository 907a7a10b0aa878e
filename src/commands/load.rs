//! `load`: the guide's `while true; curl` loop done right, as linkerd's slow_cooker does it:
//! concurrent requests through a node's proxy, an optional overall rate, a live progress line,
//! then throughput and latency percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::Env;
use crate::cli::LoadArgs;
use crate::output::Output;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub target: String,
    pub duration_s: f64,
    pub concurrency: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    pub requests: u64,
    pub successes: u64,
    pub failures: u64,
    pub throughput_rps: f64,
    pub latency_ms: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            out,
            "{} requests in {:.1}s through {}: {} ok, {} failed, {:.1} req/s",
            self.requests,
            self.duration_s,
            self.target,
            self.successes,
            self.failures,
            self.throughput_rps
        )?;
        writeln!(
            out,
            "latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            self.latency_ms.p50, self.latency_ms.p90, self.latency_ms.p99, self.latency_ms.max
        )?;
        if let Some(e) = &self.last_error {
            writeln!(out, "last error: {e}")?;
        }
        Ok(())
    }
}

/// Latencies are counted in microseconds, from 1 µs to a minute (longer ones count as a
/// minute), to 3 significant digits: a fixed few hundred KB however many requests are sent.
const LATENCY_MAX_US: u64 = 60_000_000;
const LATENCY_DIGITS: u8 = 3;

impl Percentiles {
    /// Read from a histogram of microseconds: nearest-rank percentiles, each within 0.1%.
    fn of(latencies: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if latencies.is_empty() {
            return Self::default();
        }
        Self {
            p50: ms(latencies.value_at_quantile(0.50)),
            p90: ms(latencies.value_at_quantile(0.90)),
            p99: ms(latencies.value_at_quantile(0.99)),
            max: ms(latencies.max()),
        }
    }
}

/// What the workers share: counts for the progress line, and every latency.
struct Counters {
    requests: AtomicU64,
    successes: AtomicU64,
    latencies: Mutex<Histogram<u64>>,
}

impl Counters {
    fn new() -> Result<Self> {
        Ok(Self {
            requests: AtomicU64::new(0),
            successes: AtomicU64::new(0),
            latencies: Mutex::new(
                Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_DIGITS)
                    .context("making the latency histogram")?,
            ),
        })
    }

    fn latencies(&self) -> MutexGuard<'_, Histogram<u64>> {
        // A histogram is whole after every record: one poisoned by a panic elsewhere is fine.
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, latency: Duration, ok: bool) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies().saturating_record(us);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if ok {
            self.successes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn run(args: &LoadArgs, env: &Env) -> Result<()> {
    let node = match &args.node.node {
        Some(node) => node.clone(),
        None => {
            let cx = env.connect().await?;
            crate::nodes::pick_node(&cx)
                .await?
                .host()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let summary = send(args, &node, &env.out).await?;
    let failed = summary.requests == 0 || summary.successes == 0;
    let message = format!(
        "no request through {} succeeded{}",
        summary.target,
        summary
            .last_error
            .as_deref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default()
    );
    env.out.section("load", &summary);
    if failed {
        return Err(anyhow::anyhow!(message));
    }
    Ok(())
}

async fn send(args: &LoadArgs, node: &str, out: &Output) -> Result<LoadSummary> {
    let proxy = format!("http://{node}:{}", args.node.proxy_port);
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .proxy(reqwest::Proxy::http(&proxy).with_context(|| format!("proxy address {proxy}"))?)
        .build()?;
    let counters = Arc::new(Counters::new()?);
    let started = Instant::now();
    let deadline = started + args.duration.0;
    // Each worker paces itself so that together they send `rate` requests a second.
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(f64::from(args.concurrency) / f64::from(rate)));

    let workers = (0..args.concurrency).map(|worker| {
        let client = client.clone();
        let counters = counters.clone();
        async move {
            let mut last_error = None;
            // Workers start spread over one interval, so that together they keep an even rate.
            let mut ticker = interval.map(|i| {
                let offset = i.mul_f64(f64::from(worker) / f64::from(args.concurrency));
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                if let Some(t) = ticker.as_mut() {
                    // Stop at the deadline even while waiting for the next tick.
                    tokio::select! {
                        _ = t.tick() => {}
                        _ = tokio::time::sleep_until(deadline.into()) => break,
                    }
                }
                if Instant::now() >= deadline {
                    break;
                }
                let sent = Instant::now();
                let result = client.get("http://hello/").send().await;
                let ok = match result {
                    Ok(r) if r.status().is_success() => r.text().await.is_ok(),
                    Ok(r) => {
                        last_error = Some(format!("HTTP {}", r.status()));
                        false
                    }
                    Err(e) => {
                        last_error = Some(e.to_string());
                        false
                    }
                };
                counters.record(sent.elapsed(), ok);
            }
            last_error
        }
    });
    let progress = async {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.tick().await;
        while Instant::now() < deadline {
            tick.tick().await;
            let n = counters.requests.load(Ordering::Relaxed);
            let ok = counters.successes.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64();
            let p99 = Percentiles::of(&counters.latencies()).p99;
            let line = format!(
                "{n} requests, {ok} ok, {:.1} req/s, p99 {p99:.1} ms, {:.0}s of {:.0}s",
                n as f64 / secs.max(0.001),
                secs.min(args.duration.0.as_secs_f64()),
                args.duration.0.as_secs_f64()
            );
            if out.is_quiet() {
                continue;
            }
            if out.stderr_is_terminal() {
                eprint!("\r\x1b[2K{line}");
            } else if (secs as u64) % 5 == 0 {
                out.progress(line);
            }
        }
        if out.stderr_is_terminal() && !out.is_quiet() {
            eprintln!();
        }
    };
    let (results, ()) = futures::join!(futures::future::join_all(workers), progress);
    let elapsed = started.elapsed().as_secs_f64();
    let last_error = results.into_iter().fold(None, |last, error| error.or(last));
    let latency_ms = Percentiles::of(&counters.latencies());
    let requests = counters.requests.load(Ordering::Relaxed);
    let successes = counters.successes.load(Ordering::Relaxed);
    Ok(LoadSummary {
        target: format!("{proxy} -> http://hello/"),
        duration_s: elapsed,
        concurrency: args.concurrency,
        rate: args.rate,
        requests,
        successes,
        failures: requests - successes,
        throughput_rps: requests as f64 / elapsed.max(0.001),
        latency_ms,
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_within_a_tenth_of_a_percent() {
        let counters = Counters::new().unwrap();
        assert_eq!(Percentiles::of(&counters.latencies()).p99, 0.0);
        for ms in 1..=100 {
            counters.record(Duration::from_millis(ms), ms % 10 != 0);
        }
        let p = Percentiles::of(&counters.latencies());
        for (got, want) in [(p.p50, 50.0), (p.p90, 90.0), (p.p99, 99.0), (p.max, 100.0)] {
            assert!(
                (got - want).abs() <= want / 1000.0,
                "{got} for {want}: {p:?}"
            );
        }
        assert_eq!(counters.requests.load(Ordering::Relaxed), 100);
        assert_eq!(counters.successes.load(Ordering::Relaxed), 90);
        // A latency past the histogram's range counts as its top, not as an error.
        counters.record(Duration::from_secs(3600), false);
        let max = Percentiles::of(&counters.latencies()).max;
        assert!((max - 60_000.0).abs() <= 60.0, "{max}");
    }

    #[test]
    fn memory_does_not_grow_with_the_requests() {
        let counters = Counters::new().unwrap();
        let size = |c: &Counters| c.latencies().distinct_values();
        let before = size(&counters);
        for i in 0..200_000u64 {
            counters.record(Duration::from_micros(1 + i % 50_000), true);
        }
        assert_eq!(size(&counters), before);
        assert_eq!(counters.latencies().len(), 200_000);
    }
}
