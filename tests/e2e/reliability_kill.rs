//! Crash safety (issue 4): `kill -9` at 20 moments spread over an `up` (and at a few moments
//! of a `down`), with 30-80 ms of latency per call through the proxy so that there is time to
//! land in the middle of things. The kill comes once the proxy has received the k-th request;
//! the proxy adds its latency after moto has answered, so the killed run's last calls were
//! carried out but never seen. After each kill the next `up` must converge with no duplicate
//! and `down` must leave nothing. Every trial starts from an empty region: moto is reset
//! between trials unless the trial before left nothing (a reset takes seconds).
//!
//! With `L5D_ECS_RELIABILITY_OUT=<file>` each trial appends its figures as a JSON line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::reliability::{duplicate_creates, seed, Trial};
use crate::support::*;

const DESIRED: usize = 2;
const UP_TRIALS: usize = 20;
const DOWN_TRIALS: usize = 6;
const LATENCY_MS: (u64, u64) = (30, 80);
const WAIT: Duration = Duration::from_secs(120);

fn up_args() -> Vec<String> {
    ["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"]
        .map(String::from)
        .to_vec()
}

fn down_args() -> Vec<String> {
    ["down", "--yes"].map(String::from).to_vec()
}

/// The rules layer's eventual consistency off: an `up` then refuses nothing for now and so
/// makes the same calls every time, and the k-th call of the calibration run is the k-th of
/// each trial. (The waits themselves are tested in `realistic_aws` and `reliability`.) A reset
/// restores the delays, so this follows every one.
fn steady_account(t: &TestEnv) {
    t.moto.configure(serde_json::json!({"delays": {
        "instance_profile": 0,
        "service_linked_role": 0,
        "eni_release": 0,
        "asg_delete": 0,
        "service_drain": 0,
        "container_instance_deregister": 0,
    }}));
}

/// A fresh working directory (and so a fresh state file) for one trial.
fn trial_dir(t: &TestEnv, name: &str) -> PathBuf {
    let dir = t.work_dir().join(name);
    std::fs::create_dir_all(dir.join("home")).expect("create trial dir");
    dir
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join(".l5d-ecs").join(format!("{DEFAULT_STACK}.json"))
}

/// `k` values spread over 1..=total-2 (the calls of a whole run), `n` of them, distinct.
fn moments(total: usize, n: usize) -> Vec<usize> {
    assert!(
        total > n + 1,
        "a whole run makes only {total} calls, too few for {n} distinct kill moments"
    );
    (0..n).map(|i| 1 + i * (total - 3) / (n - 1)).collect()
}

/// The state file, if there is one, must be whole: a kill never leaves a torn file.
fn check_state_whole(trial: &mut Trial, dir: &Path) {
    let path = state_path(dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&text);
        trial.check(
            parsed
                .as_ref()
                .is_ok_and(|v| v.get("format_version").is_some()),
            || format!("after the kill the state file is not whole:\n{text}"),
        );
        trial.check(file_mode(&path) == 0o600, || {
            "after the kill the state file is not mode 0600".to_string()
        });
    }
}

/// Runs `args` with latency through a fresh proxy and kills it (SIGKILL) once the proxy has
/// received `k` requests. Returns the proxy and whether the kill landed before the exit.
async fn run_and_kill(
    t: &TestEnv,
    dir: &Path,
    args: Vec<String>,
    k: usize,
    seed: u64,
) -> (Proxy, bool) {
    let proxy = t.proxy().await;
    proxy.set_chaos(Chaos::latency_ms(seed, LATENCY_MS.0, LATENCY_MS.1));
    let mut running = Cli::new(dir, &proxy.url()).args(args).spawn();
    let reached = proxy.wait_for_requests(k, WAIT).await;
    let landed = reached && !running.has_exited();
    let _ = running.kill().await;
    // The killed run's calls in flight go on to moto, as they would in AWS; let them land
    // before the next run looks.
    proxy.wait_idle(WAIT).await;
    proxy.clear_chaos();
    (proxy, landed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_twenty_moments_of_up_then_up_converges_and_down_leaves_nothing() {
    let t = TestEnv::reusing().await;
    steady_account(&t);
    let seed = seed();

    // How many calls a whole `up` makes with this latency.
    let calibration = trial_dir(&t, "calibration");
    let proxy = t.proxy().await;
    proxy.set_chaos(Chaos::latency_ms(seed, LATENCY_MS.0, LATENCY_MS.1));
    let started = std::time::Instant::now();
    Cli::new(&calibration, &proxy.url())
        .args(up_args())
        .run()
        .await
        .assert_success();
    let total = proxy.requests_seen();
    eprintln!(
        "a whole up: {total} calls in {:?} with {}-{} ms latency",
        started.elapsed(),
        LATENCY_MS.0,
        LATENCY_MS.1
    );
    drop(proxy);
    Cli::new(&calibration, t.moto.url())
        .args(down_args())
        .run()
        .await
        .assert_success();

    let mut failures = Vec::new();
    for (i, k) in moments(total, UP_TRIALS).into_iter().enumerate() {
        t.reset_unless_empty().await;
        steady_account(&t);
        let dir = trial_dir(&t, &format!("up-{i:02}"));
        let mut trial = Trial::new("kill -9 during up", format!("after {k} of {total} calls"));
        trial.seed = Some(seed.wrapping_add(i as u64));

        let (proxy, landed) =
            run_and_kill(&t, &dir, up_args(), k, seed.wrapping_add(i as u64)).await;
        if landed {
            trial.count_kill();
        } else {
            trial.problems.push(format!(
                "the kill after {k} calls came too late: up had finished"
            ));
        }
        check_state_whole(&mut trial, &dir);

        let up = Cli::new(&dir, &proxy.url()).args(up_args()).run().await;
        trial.check(up.code == Some(0), || {
            format!("the up after the kill exited {:?}:\n{up}", up.code)
        });
        let inventory = t.aws.inventory().await;
        let missing = inventory.missing(DEFAULT_STACK, DESIRED);
        trial.check(missing.is_empty(), || {
            format!("the up after the kill left the stack incomplete, missing {missing:?}")
        });
        trial.add_duplicates(
            "after the kill and up",
            &inventory.duplicates(DEFAULT_STACK, DESIRED),
        );
        trial.add_duplicates(
            "after the kill and up (creates carried out twice)",
            &duplicate_creates(&proxy.calls()),
        );

        let down = Cli::new(&dir, &proxy.url()).args(down_args()).run().await;
        trial.check(down.code == Some(0), || {
            format!("down exited {:?}:\n{down}", down.code)
        });
        trial.add_orphans("after down", &t.aws.inventory().await.orphans());
        trial.check(!state_path(&dir).exists(), || {
            "down left the state file".to_string()
        });
        trial.count_proxy(&proxy);
        trial.record();
        if !trial.problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  calls: {}",
                trial.trial,
                trial.problems.join("\n  "),
                proxy.call_names().join(" ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {UP_TRIALS} kill trials failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_down_then_down_leaves_nothing() {
    let t = TestEnv::reusing().await;
    steady_account(&t);
    let seed = seed().wrapping_add(1000);

    // How many calls a whole `down` makes with this latency.
    let calibration = trial_dir(&t, "calibration");
    Cli::new(&calibration, t.moto.url())
        .args(up_args())
        .run()
        .await
        .assert_success();
    let proxy = t.proxy().await;
    proxy.set_chaos(Chaos::latency_ms(seed, LATENCY_MS.0, LATENCY_MS.1));
    Cli::new(&calibration, &proxy.url())
        .args(down_args())
        .run()
        .await
        .assert_success();
    let total = proxy.requests_seen();
    drop(proxy);

    let mut failures = Vec::new();
    for (i, k) in moments(total, DOWN_TRIALS).into_iter().enumerate() {
        t.reset_unless_empty().await;
        steady_account(&t);
        let dir = trial_dir(&t, &format!("down-{i:02}"));
        Cli::new(&dir, t.moto.url())
            .args(up_args())
            .run()
            .await
            .assert_success();
        let mut trial = Trial::new("kill -9 during down", format!("after {k} of {total} calls"));
        trial.seed = Some(seed.wrapping_add(i as u64));

        let (proxy, landed) =
            run_and_kill(&t, &dir, down_args(), k, seed.wrapping_add(i as u64)).await;
        if landed {
            trial.count_kill();
        } else {
            trial.problems.push(format!(
                "the kill after {k} calls came too late: down had finished"
            ));
        }
        check_state_whole(&mut trial, &dir);

        let down = Cli::new(&dir, &proxy.url()).args(down_args()).run().await;
        trial.check(down.code == Some(0), || {
            format!("the down after the kill exited {:?}:\n{down}", down.code)
        });
        trial.add_orphans(
            "after the kill and down",
            &t.aws.inventory().await.orphans(),
        );
        trial.check(!state_path(&dir).exists(), || {
            "down left the state file".to_string()
        });
        trial.count_proxy(&proxy);
        trial.record();
        if !trial.problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  calls: {}",
                trial.trial,
                trial.problems.join("\n  "),
                proxy.call_names().join(" ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {DOWN_TRIALS} kill trials failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
