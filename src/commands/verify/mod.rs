//! `verify`: the guide's checks, made to report. Each check says what it expected and what
//! came back; failing checks are retried until the timeout, since services take time to
//! register in consul.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use serde::Serialize;

use super::Env;
use crate::aws::{poll_with, Backoff, Poll, TimedOut};
use crate::cli::VerifyArgs;
use crate::nodes;
use crate::output::Lines;

/// The per-request override the guide demonstrates.
pub const DTAB_OVERRIDE: &str = "/svc/world => /svc/world-v2";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Failing checks are run again after 0.5 s, then less and less often, up to every 5 s.
const RETRY: Backoff = Backoff {
    first: Duration::from_millis(500),
    max: Duration::from_secs(5),
};

/// `verify` found a failing check (exit code 3).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChecksFailed(pub String);

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    pub latency_ms: f64,
    pub expected: String,
    pub got: String,
    pub attempts: u32,
}

impl std::fmt::Display for CheckResult {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "PASS" } else { "FAIL" };
        writeln!(
            out,
            "{mark}  {:<32} {:>8.1} ms  {}",
            self.name, self.latency_ms, self.got
        )?;
        if !self.ok {
            writeln!(out, "      expected: {}", self.expected)?;
        }
        Ok(())
    }
}

/// Where to send each check.
pub struct Targets {
    pub node: String,
    /// Host of the node that runs linkerd-viz, if it is deployed.
    pub viz_host: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Route,
    Dtab,
    AdminPing,
    Consul,
    Viz,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Self::Route => "route hello -> world",
            Self::Dtab => "per-request dtab -> world-v2",
            Self::AdminPing => "linkerd admin /admin/ping",
            Self::Consul => "consul leader and catalog",
            Self::Viz => "linkerd-viz dashboard",
        }
    }
}

struct Attempt {
    ok: bool,
    expected: String,
    got: String,
    latency: Duration,
}

pub async fn run(args: &VerifyArgs, env: &Env) -> Result<()> {
    let targets = match &args.node.node {
        // A node given by hand (a tunnel, a port mapping): no AWS call at all.
        Some(node) => {
            let viz_deployed = env.recorded().await?.is_some_and(|s| {
                s.resources
                    .apps
                    .get("linkerd-viz")
                    .is_some_and(|a| !a.tasks.is_empty())
            });
            Targets {
                node: node.clone(),
                viz_host: viz_deployed.then(|| node.clone()),
            }
        }
        None => {
            let cx = env.connect().await?;
            let node = nodes::pick_node(&cx).await?;
            let report = super::status::report(&cx).await?;
            Targets {
                node: node.host().unwrap_or_default().to_owned(),
                viz_host: report.viz_host,
            }
        }
    };
    env.out.progress(format!("checking node {}", targets.node));
    let results = verify(args, &targets).await?;
    let failed = failure(&results);
    env.out.section("checks", &Lines(results));
    failed.map_or(Ok(()), Err)
}

async fn verify(args: &VerifyArgs, targets: &Targets) -> Result<Vec<CheckResult>> {
    let proxy = format!("http://{}:{}", targets.node, args.node.proxy_port);
    let via_proxy = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .proxy(reqwest::Proxy::http(&proxy).with_context(|| format!("proxy address {proxy}"))?)
        .build()?;
    let direct = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()?;

    let mut checks = vec![Check::Route, Check::Dtab, Check::AdminPing, Check::Consul];
    if targets.viz_host.is_some() {
        checks.push(Check::Viz);
    }
    // Each look runs the checks that have not passed yet; a check that passed is kept.
    let results: Mutex<Vec<Option<(Attempt, u32)>>> =
        Mutex::new(checks.iter().map(|_| None).collect());
    let lock = || results.lock().unwrap_or_else(PoisonError::into_inner);
    let waited = poll_with("every check to pass", args.timeout.0, RETRY, None, || {
        let pending: Vec<usize> = (0..checks.len())
            .filter(|i| !lock()[*i].as_ref().is_some_and(|(a, _)| a.ok))
            .collect();
        let (checks, via_proxy, direct) = (&checks, &via_proxy, &direct);
        async move {
            let attempts = futures::future::join_all(
                pending
                    .iter()
                    .map(|i| run_check(checks[*i], args, targets, via_proxy, direct)),
            )
            .await;
            let mut results = lock();
            for (i, attempt) in pending.iter().zip(attempts) {
                let tries = results[*i].as_ref().map_or(0, |(_, n)| *n) + 1;
                results[*i] = Some((attempt, tries));
            }
            let failing: Vec<&str> = checks
                .iter()
                .zip(results.iter())
                .filter(|(_, r)| !r.as_ref().is_some_and(|(a, _)| a.ok))
                .map(|(c, _)| c.name())
                .collect();
            Ok(if failing.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("failing: {}", failing.join(", ")))
            })
        }
    })
    .await;
    // A timeout leaves the failing checks failed: the report says which and why.
    if let Err(e) = waited {
        if e.downcast_ref::<TimedOut>().is_none() {
            return Err(e);
        }
    }
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    Ok(checks
        .iter()
        .zip(results)
        .map(|(check, r)| {
            let (a, attempts) = r.unwrap_or((
                Attempt {
                    ok: false,
                    expected: String::new(),
                    got: "not run".to_owned(),
                    latency: Duration::ZERO,
                },
                0,
            ));
            CheckResult {
                name: check.name().to_owned(),
                ok: a.ok,
                latency_ms: a.latency.as_secs_f64() * 1000.0,
                expected: a.expected,
                got: a.got,
                attempts,
            }
        })
        .collect())
}

/// The error for failed checks, naming each with what it expected and got.
fn failure(results: &[CheckResult]) -> Option<anyhow::Error> {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "{}: expected {}, got {} (after {} attempt(s))",
                r.name, r.expected, r.got, r.attempts
            )
        })
        .collect();
    (!failed.is_empty()).then(|| {
        ChecksFailed(format!(
            "{} of {} check(s) failed:\n  {}\n`l5d-ecs logs linkerd` and `l5d-ecs logs hello` show what the node saw",
            failed.len(),
            results.len(),
            failed.join("\n  ")
        ))
        .into()
    })
}

async fn run_check(
    check: Check,
    args: &VerifyArgs,
    targets: &Targets,
    via_proxy: &reqwest::Client,
    direct: &reqwest::Client,
) -> Attempt {
    let started = Instant::now();
    let (expected, outcome) = match check {
        Check::Route => (
            "Hello (<ip>) World (<ip>)!!".to_owned(),
            get_text(via_proxy.get("http://hello/"))
                .await
                .and_then(|body| expect_hello(&body, "World")),
        ),
        Check::Dtab => (
            "Hello (<ip>) World-V2 (<ip>)!!".to_owned(),
            get_text(
                via_proxy
                    .get("http://hello/")
                    .header("l5d-dtab", DTAB_OVERRIDE),
            )
            .await
            .and_then(|body| expect_hello(&body, "World-V2")),
        ),
        Check::AdminPing => {
            let url = format!("http://{}:{}/admin/ping", targets.node, args.admin_port);
            (
                format!("pong from {url}"),
                get_text(direct.get(&url)).await.and_then(|body| {
                    if body.trim() == "pong" {
                        Ok(body.trim().to_owned())
                    } else {
                        Err(anyhow!("{:?}", shorten(&body)))
                    }
                }),
            )
        }
        Check::Consul => {
            let base = format!("http://{}:{}", targets.node, args.consul_port);
            (
                format!("a leader at {base}/v1/status/leader and hello, world, world-v2 in {base}/v1/catalog/services"),
                consul_check(direct, &base).await,
            )
        }
        Check::Viz => {
            let url = format!(
                "http://{}:{}/",
                targets.viz_host.as_deref().unwrap_or(&targets.node),
                args.viz_port
            );
            (
                format!("HTTP 200 from {url}"),
                get_text(direct.get(&url))
                    .await
                    .map(|_| "HTTP 200".to_owned()),
            )
        }
    };
    let latency = started.elapsed();
    match outcome {
        Ok(got) => Attempt {
            ok: true,
            expected,
            got,
            latency,
        },
        Err(e) => Attempt {
            ok: false,
            expected,
            got: format!("{e:#}"),
            latency,
        },
    }
}

async fn get_text(request: reqwest::RequestBuilder) -> Result<String> {
    let response = request
        .send()
        .await
        .map_err(|e| anyhow!("{}", error_chain(&e)))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(anyhow!("HTTP {status}: {:?}", shorten(&body)));
    }
    Ok(body)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 120 {
        format!("{}...", s.chars().take(120).collect::<String>())
    } else {
        s.to_owned()
    }
}

fn expect_hello(body: &str, world: &str) -> Result<String> {
    match parse_hello(body) {
        Some(reply) if reply.world == world => Ok(body.trim().to_owned()),
        _ => Err(anyhow!("{:?}", shorten(body))),
    }
}

/// A helloworld reply: `Hello (<ip>) <World|World-V2> (<ip>)!!`.
#[derive(Debug, PartialEq, Eq)]
pub struct HelloReply {
    pub hello_ip: IpAddr,
    pub world: String,
    pub world_ip: IpAddr,
}

pub fn parse_hello(body: &str) -> Option<HelloReply> {
    let rest = body.trim().strip_prefix("Hello (")?;
    let (hello_ip, rest) = rest.split_once(") ")?;
    let (world, rest) = rest.split_once(" (")?;
    let world_ip = rest.strip_suffix(")!!")?;
    Some(HelloReply {
        hello_ip: hello_ip.parse().ok()?,
        world: world.to_owned(),
        world_ip: world_ip.parse().ok()?,
    })
}

async fn consul_check(client: &reqwest::Client, base: &str) -> Result<String> {
    let leader = get_text(client.get(format!("{base}/v1/status/leader"))).await?;
    let leader: String = serde_json::from_str(&leader)
        .map_err(|_| anyhow!("leader {:?} is not a JSON string", shorten(&leader)))?;
    if leader.is_empty() {
        return Err(anyhow!("no leader elected"));
    }
    let catalog = get_text(client.get(format!("{base}/v1/catalog/services"))).await?;
    let catalog: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&catalog)
        .map_err(|_| anyhow!("catalog {:?} is not a JSON object", shorten(&catalog)))?;
    let missing: Vec<&str> = ["hello", "world", "world-v2"]
        .into_iter()
        .filter(|s| !catalog.contains_key(*s))
        .collect();
    if !missing.is_empty() {
        let mut have: Vec<&str> = catalog.keys().map(String::as_str).collect();
        have.sort_unstable();
        return Err(anyhow!(
            "leader {leader}, but the catalog lacks {} (it has: {})",
            missing.join(", "),
            have.join(", ")
        ));
    }
    Ok(format!(
        "leader {leader}; catalog has hello, world, world-v2"
    ))
}

#[cfg(test)]
mod tests;
