//! Snapshot tests (insta) of what people and scripts read (issue 6): `--help` of the main
//! commands, the text output of `plan` and `doctor` on a fresh moto account, and the shapes
//! (keys and value types) of the `--output json` documents of `plan`, `doctor`, `up`,
//! `deploy`, `status`, `verify` and `down`. Ids, times, addresses and ports are redacted
//! (see `drift_support::redact` and `drift_support::shape`).
//!
//! The snapshots live in `tests/e2e/snapshots/`. After an intended change of the output, review
//! and accept the new ones with `cargo insta review`, or rewrite them with
//! `INSTA_UPDATE=always cargo test --test e2e snapshots::`; with `CI=true` (as in CI) insta never
//! writes and a difference fails the test.

use crate::drift_support::*;
use crate::mesh_support::NodeStandin;
use crate::support::*;

/// A CLI run that needs no AWS: help is printed before anything else happens.
fn offline_cli(dir: &tempfile::TempDir) -> Cli {
    std::fs::create_dir_all(dir.path().join("home")).expect("home");
    Cli::new(dir.path(), DEAD_URL)
}

// ---------------------------------------------------------------------------------------------
// --help
// ---------------------------------------------------------------------------------------------

/// `l5d-ecs <args>`: exit 0, nothing on stderr; returns stdout.
async fn help(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = offline_cli(&dir).args(args.iter().copied()).run().await;
    out.assert_success();
    assert_eq!(out.stderr, "", "{out}");
    // Every command's help ends with an example.
    assert!(
        out.stdout.contains("Example"),
        "`{}` has no example\n{out}",
        args.join(" ")
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_of_the_main_commands() {
    for (name, args) in [
        ("help", &["--help"][..]),
        ("help_up", &["up", "--help"][..]),
        ("help_plan", &["plan", "--help"][..]),
        ("help_doctor", &["doctor", "--help"][..]),
        ("help_down", &["down", "--help"][..]),
        ("help_status", &["status", "--help"][..]),
        ("help_verify", &["verify", "--help"][..]),
        ("help_deploy", &["deploy", "--help"][..]),
    ] {
        let text = help(args).await;
        insta::assert_snapshot!(name, text, &format!("l5d-ecs {}", args.join(" ")));
    }
}

// ---------------------------------------------------------------------------------------------
// plan and doctor on a fresh account
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_text_on_an_empty_account() {
    let t = TestEnv::new().await;
    let out = t
        .cli()
        .args(["plan", "--allow-cidr", ALLOW_CIDR])
        .run()
        .await;
    out.assert_success();
    insta::assert_snapshot!(
        "plan_text_empty_account",
        redact(&out.stdout),
        "l5d-ecs plan --allow-cidr 203.0.113.7/32 (stdout; ids and times redacted)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_json_on_an_empty_account() {
    let t = TestEnv::new().await;
    let (out, report) = run_json(t.cli(), &["plan", "--allow-cidr", ALLOW_CIDR]).await;
    out.assert_success();
    insta::assert_snapshot!(
        "plan_json_empty_account",
        redacted_json(&report),
        "l5d-ecs plan --allow-cidr 203.0.113.7/32 --output json (ids redacted)"
    );
    insta::assert_snapshot!(
        "plan_json_shape",
        shape_text(&report),
        "shape of the plan JSON document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_on_a_healthy_account() {
    let t = TestEnv::new().await;
    let out = t.cli().arg("doctor").run().await;
    out.assert_success();
    insta::assert_snapshot!(
        "doctor_text_healthy_account",
        redact(&out.stdout),
        "l5d-ecs doctor (stdout; ids and times redacted)"
    );
    let (out, report) = run_json(t.cli(), &["doctor", "--key-pair", "no-such-key"]).await;
    out.assert_code(1);
    insta::assert_snapshot!(
        "doctor_json_shape",
        shape_text(&report),
        "shape of the doctor JSON document (with a problem)"
    );
}

// ---------------------------------------------------------------------------------------------
// The JSON documents of a lifecycle
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_shapes_of_up_deploy_status_verify_down() {
    let t = TestEnv::new().await;

    let (out, up) = run_json(t.cli(), &["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"]).await;
    out.assert_success();
    insta::assert_snapshot!(
        "up_json_shape",
        shape_text(&up),
        "shape of the up JSON document"
    );

    let joined = t.aws.register_container_instances(DEFAULT_STACK).await;
    assert_eq!(joined.len(), 2, "two nodes joined: {joined:?}");

    let (out, deploy) = run_json(t.cli(), &["deploy", "hello-world"]).await;
    out.assert_success();
    insta::assert_snapshot!(
        "deploy_json_shape",
        shape_text(&deploy),
        "shape of the deploy JSON document"
    );

    let (out, status) = run_json(t.cli(), &["status"]).await;
    out.assert_success();
    insta::assert_snapshot!(
        "status_json_shape",
        shape_text(&status),
        "shape of the status JSON document"
    );

    let node = NodeStandin::healthy();
    let mut args = vec!["verify".to_string()];
    args.extend(node.verify_args());
    args.extend(["--timeout".to_string(), "10s".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (out, verify) = run_json(t.cli(), &args).await;
    assert_eq!(
        out.code,
        Some(0),
        "verify against the healthy stand-in\n{out}\n{}",
        node.log()
    );
    insta::assert_snapshot!(
        "verify_json_shape",
        shape_text(&verify),
        "shape of the verify JSON document"
    );

    let (out, down) = run_json(t.cli(), &["down", "--yes"]).await;
    out.assert_success();
    insta::assert_snapshot!(
        "down_json_shape",
        shape_text(&down),
        "shape of the down JSON document"
    );
}
