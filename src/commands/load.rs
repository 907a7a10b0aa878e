//! `load`: the guide's `while true; curl` loop done right, as linkerd's slow_cooker does it:
//! concurrent requests through a node's proxy, an optional overall rate, a live progress line,
//! then throughput and latency percentiles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
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

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    successes: AtomicU64,
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
    let counters = Arc::new(Counters::default());
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
            let mut latencies = Vec::new();
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
                latencies.push(sent.elapsed());
                counters.requests.fetch_add(1, Ordering::Relaxed);
                if ok {
                    counters.successes.fetch_add(1, Ordering::Relaxed);
                }
            }
            (latencies, last_error)
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
            let line = format!(
                "{n} requests, {ok} ok, {:.1} req/s, {:.0}s of {:.0}s",
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
    let mut all: Vec<Duration> = Vec::new();
    let mut last_error = None;
    for (latencies, error) in results {
        all.extend(latencies);
        last_error = error.or(last_error);
    }
    all.sort_unstable();
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
        latency_ms: Percentiles {
            p50: percentile(&all, 50.0),
            p90: percentile(&all, 90.0),
            p99: percentile(&all, 99.0),
            max: all.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        },
        last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50.0), 50.0);
        assert_eq!(percentile(&samples, 90.0), 90.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[Duration::from_millis(7)], 99.0), 7.0);
    }
}
