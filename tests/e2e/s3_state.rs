//! State in S3 (issue 12): two working directories on one `--state s3://…` are one stack,
//! the S3 lock keeps a second run off and names its holder, `unlock` frees the lock of a run
//! killed with -9, a write racing another writer's change is refused without overwriting it,
//! and `state push`/`pull` move a state between a file and S3. Everything is read back from
//! moto's S3 and the region, never from the tool's messages alone.

use std::path::Path;

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use crate::support::*;

const BUCKET: &str = "team-state";
const KEY: &str = "demo/l5d-demo.json";

fn state_url() -> String {
    format!("s3://{BUCKET}/{KEY}")
}

fn up_args() -> Vec<String> {
    ["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"]
        .map(String::from)
        .to_vec()
}

async fn make_bucket(aws: &Aws) {
    aws.s3
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("create the state bucket");
}

/// The object's bytes, `None` when there is none.
async fn object(aws: &Aws, key: &str) -> Option<Vec<u8>> {
    match aws.s3.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => Some(out.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => {
            let code = e.as_service_error().map(|s| s.is_no_such_key());
            assert_eq!(code, Some(true), "reading s3://{BUCKET}/{key}: {e:?}");
            None
        }
    }
}

async fn keys(aws: &Aws) -> Vec<String> {
    let out = aws
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .expect("list the bucket");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// The lock object's JSON, once it is there.
async fn wait_for_lock(aws: &Aws) -> serde_json::Value {
    let key = format!("{KEY}.lock");
    let bytes = until("the S3 lock object", || async { object(aws, &key).await }).await;
    serde_json::from_slice(&bytes).expect("the lock is JSON")
}

fn other_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("l5d-ecs-test-other-")
        .tempdir()
        .expect("tempdir");
    std::fs::create_dir_all(dir.path().join("home")).expect("create home");
    dir
}

fn local_state(dir: &Path) -> std::path::PathBuf {
    dir.join(".l5d-ecs").join(format!("{DEFAULT_STACK}.json"))
}

/// `cli` with the state in S3.
fn in_s3(cli: Cli) -> Cli {
    cli.args(["--state", &state_url()])
}

/// An `up` through a proxy adding `min_ms`-`max_ms` to each call, with the state in S3.
async fn slow_up(t: &TestEnv, seed: u64) -> (Proxy, Running) {
    let slow = t.proxy().await;
    slow.set_chaos(Chaos::latency_ms(seed, 100, 150));
    let running = in_s3(t.cli_via(&slow).args(up_args())).spawn();
    (slow, running)
}

/// The calls a refused run made beyond reading the state and the caller.
fn beyond_the_state(proxy: &Proxy) -> Vec<String> {
    proxy
        .call_names()
        .into_iter()
        .filter(|c| !c.starts_with("s3:") && !c.starts_with("sts:"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_directories_on_one_s3_state_are_one_stack_and_the_lock_names_its_holder() {
    let t = TestEnv::new().await;
    make_bucket(&t.aws).await;
    let b = other_dir();
    let (_slow, first) = slow_up(&t, 7).await;
    let lock = wait_for_lock(&t.aws).await;
    // Once a state is written, status locks it too (before, it looks in the region instead).
    until("the first state write", || async {
        object(&t.aws, KEY).await
    })
    .await;
    let id = lock["id"].as_str().expect("the lock has an id").to_owned();
    assert_eq!(lock["pid"].as_u64(), first.pid().map(u64::from), "{lock}");
    assert!(
        lock["who"].as_str().is_some_and(|w| w.starts_with("arn:")),
        "the lock names the caller's ARN: {lock}"
    );
    assert_eq!(lock["command"], "up", "{lock}");

    // From the other directory, status and up refuse at once, naming the lock and its holder.
    let watcher = t.proxy().await;
    for args in [vec!["status"], vec!["up", "--allow-cidr", ALLOW_CIDR]] {
        let refused = Cli::new(b.path(), &watcher.url())
            .args(args)
            .args(["--state", &state_url()])
            .run()
            .await;
        assert_eq!(refused.code, Some(1), "{refused}");
        let pid = format!("pid {}", first.pid().unwrap());
        for part in [id.as_str(), pid.as_str(), "old", "l5d-ecs unlock"] {
            assert!(refused.stderr.contains(part), "names {part:?}:\n{refused}");
        }
    }
    let calls = beyond_the_state(&watcher);
    assert!(calls.is_empty(), "the refused runs called {calls:?}");

    first.finish(CLI_TIMEOUT).await.assert_success();
    assert_eq!(object(&t.aws, &format!("{KEY}.lock")).await, None);
    let stored: serde_json::Value =
        serde_json::from_slice(&object(&t.aws, KEY).await.expect("the state is in S3")).unwrap();
    assert_eq!(stored["stack"], DEFAULT_STACK);
    assert!(
        stored["resources"]["cluster"]["arn"].is_string(),
        "{stored}"
    );
    let missing = t.aws.inventory().await.missing(DEFAULT_STACK, 2);
    assert!(missing.is_empty(), "up left out {missing:?}");
    for dir in [t.work_dir(), b.path()] {
        assert!(!local_state(dir).exists(), "a local state file was written");
    }

    // The other directory sees the same stack, and takes it down whole.
    let status = Cli::new(b.path(), t.moto.url())
        .args(["status", "--output", "json", "--state", &state_url()])
        .run()
        .await;
    status.assert_success();
    assert_eq!(status.json()["status"]["state_file"], state_url());
    Cli::new(b.path(), t.moto.url())
        .args(["down", "--yes", "--state", &state_url()])
        .run()
        .await
        .assert_success();
    let orphans = t.aws.inventory().await.orphans();
    assert!(
        orphans.is_empty(),
        "down from the other directory left {orphans:?}"
    );
    assert_eq!(keys(&t.aws).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlock_frees_the_lock_of_a_run_killed_with_9_and_up_then_finishes() {
    let t = TestEnv::new().await;
    make_bucket(&t.aws).await;
    let b = other_dir();
    let (_slow, running) = slow_up(&t, 11).await;
    // Killed once it has written the state at least once: midway.
    until("the first state write", || async {
        object(&t.aws, KEY).await
    })
    .await;
    let lock = wait_for_lock(&t.aws).await;
    running.kill().await;
    let id = lock["id"].as_str().unwrap().to_owned();
    assert!(
        object(&t.aws, &format!("{KEY}.lock")).await.is_some(),
        "a killed run cannot release its lock"
    );

    let refused = in_s3(Cli::new(b.path(), t.moto.url()).args(up_args()))
        .run()
        .await;
    assert_eq!(refused.code, Some(1), "{refused}");
    assert!(refused.stderr.contains(&id), "{refused}");

    // Only the lock with that id is released.
    let wrong = Cli::new(b.path(), t.moto.url())
        .args(["unlock", "not-the-id", "--state", &state_url()])
        .run()
        .await;
    assert_eq!(wrong.code, Some(2), "{wrong}");
    assert!(
        wrong.stderr.contains(&id),
        "names the lock there is:\n{wrong}"
    );
    assert!(object(&t.aws, &format!("{KEY}.lock")).await.is_some());
    Cli::new(b.path(), t.moto.url())
        .args(["unlock", &id, "--state", &state_url()])
        .run()
        .await
        .assert_success();
    assert_eq!(object(&t.aws, &format!("{KEY}.lock")).await, None);

    in_s3(Cli::new(b.path(), t.moto.url()).args(up_args()))
        .run()
        .await
        .assert_success();
    let inventory = t.aws.inventory().await;
    assert!(inventory.missing(DEFAULT_STACK, 2).is_empty());
    let twice = inventory.duplicates(DEFAULT_STACK, 2);
    assert!(twice.is_empty(), "the kill and the up made {twice:?} twice");
    in_s3(t.cli().args(["down", "--yes"]))
        .run()
        .await
        .assert_success();
    assert!(t.aws.inventory().await.orphans().is_empty());
    assert_eq!(keys(&t.aws).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_run_and_releases_its_lock() {
    let t = TestEnv::new().await;
    make_bucket(&t.aws).await;
    let (_slow, running) = slow_up(&t, 17).await;
    until("the first state write", || async {
        object(&t.aws, KEY).await
    })
    .await;
    let pid = running.pid().expect("the run's pid").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let out = running.finish(CLI_TIMEOUT).await;
    assert_eq!(out.code, Some(130), "{out}");
    assert_eq!(
        object(&t.aws, &format!("{KEY}.lock")).await,
        None,
        "the interrupted run left its lock\n{out}"
    );
    // What it made is in the state: the next up goes on from there, and down removes it all.
    in_s3(t.cli().args(up_args())).run().await.assert_success();
    assert!(t
        .aws
        .inventory()
        .await
        .duplicates(DEFAULT_STACK, 2)
        .is_empty());
    in_s3(t.cli().args(["down", "--yes"]))
        .run()
        .await
        .assert_success();
    assert!(t.aws.inventory().await.orphans().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_racing_another_writer_is_refused_and_does_not_overwrite_it() {
    let t = TestEnv::new().await;
    make_bucket(&t.aws).await;
    in_s3(t.cli().args(up_args())).run().await.assert_success();

    // A down whose calls are slow, and a writer that changes the state behind its back once
    // it is at work (it has read the state under its lock and sent its first delete).
    let slow = t.proxy().await;
    slow.set_chaos(Chaos::latency_ms(13, 300, 400));
    let down = t
        .cli_via(&slow)
        .args(["down", "--yes", "--state", &state_url()])
        .spawn();
    until("down's first delete", || async {
        slow.mutating_calls()
            .iter()
            .any(|c| c.service != "s3")
            .then_some(())
    })
    .await;
    let mut theirs: serde_json::Value =
        serde_json::from_slice(&object(&t.aws, KEY).await.unwrap()).unwrap();
    theirs["serial"] = serde_json::json!(theirs["serial"].as_u64().unwrap() + 100);
    let theirs = serde_json::to_vec_pretty(&theirs).unwrap();
    t.aws
        .s3
        .put_object()
        .bucket(BUCKET)
        .key(KEY)
        .metadata("l5d-ecs-writer", "someone-else on host elsewhere")
        .body(theirs.clone().into())
        .send()
        .await
        .unwrap();

    let out = down.finish(CLI_TIMEOUT).await;
    assert_eq!(out.code, Some(1), "the racing write must be refused\n{out}");
    assert!(
        out.stderr.contains("someone-else on host elsewhere")
            && out.stderr.contains("nothing was overwritten"),
        "the refusal names the last writer\n{out}"
    );
    assert_eq!(
        object(&t.aws, KEY).await.as_deref(),
        Some(theirs.as_slice()),
        "the other writer's state was overwritten"
    );
    assert_eq!(object(&t.aws, &format!("{KEY}.lock")).await, None);

    // From what is there now, down finishes the job.
    in_s3(t.cli().args(["down", "--yes"]))
        .run()
        .await
        .assert_success();
    assert!(t.aws.inventory().await.orphans().is_empty());
    assert_eq!(keys(&t.aws).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_push_then_down_from_another_directory_and_pull_back_and_no_other_lineage() {
    let t = TestEnv::new().await;
    make_bucket(&t.aws).await;
    let b = other_dir();
    t.cli().args(up_args()).run().await.assert_success();
    let local: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(local_state(t.work_dir())).unwrap()).unwrap();

    t.cli()
        .args(["state", "push", &state_url()])
        .run()
        .await
        .assert_success();
    assert!(!local_state(t.work_dir()).exists(), "push moves the file");
    let pushed: serde_json::Value =
        serde_json::from_slice(&object(&t.aws, KEY).await.expect("pushed")).unwrap();
    assert_eq!(pushed["lineage"], local["lineage"]);
    assert_eq!(pushed["resources"], local["resources"]);

    // Another state (another lineage) is never written over it.
    let mut stranger = local.clone();
    stranger["lineage"] = serde_json::json!("0123456789abcdef");
    std::fs::create_dir_all(b.path().join(".l5d-ecs")).unwrap();
    std::fs::write(local_state(b.path()), stranger.to_string()).unwrap();
    let refused = Cli::new(b.path(), t.moto.url())
        .args(["state", "push", &state_url()])
        .run()
        .await;
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("0123456789abcdef"), "{refused}");
    let still: serde_json::Value =
        serde_json::from_slice(&object(&t.aws, KEY).await.unwrap()).unwrap();
    assert_eq!(
        still, pushed,
        "the other lineage was written over the state"
    );
    assert!(
        local_state(b.path()).exists(),
        "the refused push kept its file"
    );
    std::fs::remove_file(local_state(b.path())).unwrap();

    // Pulled into the other directory, and pushed back: the same state each time.
    Cli::new(b.path(), t.moto.url())
        .args(["state", "pull", &state_url()])
        .run()
        .await
        .assert_success();
    assert_eq!(object(&t.aws, KEY).await, None, "pull moves the object");
    let pulled: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(local_state(b.path())).unwrap()).unwrap();
    assert_eq!(pulled["lineage"], local["lineage"]);
    Cli::new(b.path(), t.moto.url())
        .args(["state", "push", &state_url()])
        .run()
        .await
        .assert_success();

    // down from a directory that never had the state removes everything.
    let c = other_dir();
    Cli::new(c.path(), t.moto.url())
        .args(["down", "--yes", "--state", &state_url()])
        .run()
        .await
        .assert_success();
    let orphans = t.aws.inventory().await.orphans();
    assert!(orphans.is_empty(), "down left {orphans:?}");
    assert_eq!(keys(&t.aws).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_or_a_bad_location_is_refused_before_anything_else() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    let missing = t
        .cli_via(&proxy)
        .args(up_args())
        .args(["--state", "s3://no-such-bucket/l5d-demo.json"])
        .run()
        .await;
    assert_eq!(missing.code, Some(2), "{missing}");
    assert!(
        missing.stderr.contains("\"no-such-bucket\" does not exist"),
        "{missing}"
    );
    let calls = beyond_the_state(&proxy);
    assert!(calls.is_empty(), "made {calls:?} without a bucket");
    proxy.clear();
    for (bad, says) in [
        ("s3://Bad_Bucket/k.json", "invalid bucket name"),
        ("s3://team-state", "key is missing"),
        ("gs://team-state/k.json", "not supported"),
    ] {
        let out = t
            .cli_via(&proxy)
            .args(["status", "--state", bad])
            .run()
            .await;
        assert_eq!(out.code, Some(2), "{out}");
        assert!(
            out.stderr.contains(says) && out.stderr.contains(bad),
            "{out}"
        );
    }
    assert!(proxy.call_names().is_empty(), "{:?}", proxy.call_names());
}
