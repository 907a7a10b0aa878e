//! Stacks that expire on AWS's side (issue 13): `up --expires-in` leaves the ASG a scheduled
//! action to 0/0/0 and the consul server an EventBridge Scheduler schedule that terminates it,
//! both at the deadline; a second `up` moves them, `--expires-in never` and `down` remove
//! them. moto runs no schedule, so the test carries out what they would do, and checks that
//! nothing of the stack runs then, and that `up` brings it back. All read back from AWS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;

const ACTION: &str = "l5d-demo-expiry";
const SCHEDULE: &str = "l5d-demo-consul-expiry";
const ROLE: &str = "l5d-demo-expiry";

fn up(expires_in: &str) -> Vec<String> {
    [
        "up",
        "--allow-cidr",
        ALLOW_CIDR,
        "--no-wait",
        "--expires-in",
        expires_in,
    ]
    .map(String::from)
    .to_vec()
}

fn scheduler(t: &TestEnv) -> aws_sdk_scheduler::Client {
    let conf = aws_sdk_scheduler::config::Builder::new()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(t.moto.url())
        .credentials_provider(aws_sdk_scheduler::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_scheduler::Client::from_conf(conf)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The ASG's scheduled action: (start time in seconds, min, max, desired).
async fn scheduled_action(t: &TestEnv) -> Option<(i64, i32, i32, i32)> {
    let out = t
        .aws
        .autoscaling
        .describe_scheduled_actions()
        .auto_scaling_group_name("l5d-demo-asg")
        .send()
        .await
        .expect("describe scheduled actions");
    out.scheduled_update_group_actions()
        .iter()
        .find(|a| a.scheduled_action_name() == Some(ACTION))
        .map(|a| {
            (
                a.start_time().expect("a start time").secs(),
                a.min_size().unwrap_or(-1),
                a.max_size().unwrap_or(-1),
                a.desired_capacity().unwrap_or(-1),
            )
        })
}

/// The consul server's schedule: (its time in seconds, its target's input).
async fn schedule(t: &TestEnv) -> Option<(i64, String)> {
    let out = match scheduler(t).get_schedule().name(SCHEDULE).send().await {
        Ok(out) => out,
        Err(e) => {
            assert!(
                e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()),
                "{e:?}"
            );
            return None;
        }
    };
    let expression = out.schedule_expression().unwrap();
    let at = expression
        .strip_prefix("at(")
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or_else(|| panic!("a one-time schedule: {expression}"));
    assert_eq!(out.schedule_expression_timezone(), Some("UTC"));
    let target = out.target().expect("a target");
    assert_eq!(
        target.arn(),
        "arn:aws:scheduler:::aws-sdk:ec2:terminateInstances"
    );
    let when = aws_smithy_types::DateTime::from_str(
        &format!("{at}Z"),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .unwrap()
    .secs();
    Some((when, target.input().unwrap_or_default().to_owned()))
}

async fn role_exists(t: &TestEnv) -> bool {
    t.aws.iam.get_role().role_name(ROLE).send().await.is_ok()
}

/// The stack's pending and running instances: (consul server ids, node ids).
async fn running(t: &TestEnv) -> (Vec<String>, Vec<String>) {
    let mut consul = Vec::new();
    let mut nodes = Vec::new();
    for i in t.aws.running_instances(DEFAULT_STACK).await {
        let name = i
            .tags()
            .iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value())
            .unwrap_or_default();
        let id = i.instance_id().unwrap().to_owned();
        if name.ends_with("consul-server") {
            consul.push(id);
        } else {
            nodes.push(id);
        }
    }
    (consul, nodes)
}

fn near(at: i64, from_now: Duration) -> bool {
    (at - (now_secs() + from_now.as_secs() as i64)).abs() < 120
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_that_expires_stops_its_instances_on_aws_side_and_comes_back_with_up() {
    let t = TestEnv::new().await;
    t.cli().args(up("2h")).run().await.assert_success();
    let (at, min, max, desired) = scheduled_action(&t).await.expect("the scheduled action");
    assert!(near(at, Duration::from_secs(2 * 3600)), "at {at}");
    assert_eq!((min, max, desired), (0, 0, 0));
    let (consul, nodes) = running(&t).await;
    assert_eq!(consul.len(), 1, "{consul:?}");
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let (when, input) = schedule(&t).await.expect("the consul server's schedule");
    assert_eq!(when, at, "both at the same deadline");
    assert!(
        input.contains(&consul[0]),
        "terminates the consul server: {input}"
    );
    assert!(role_exists(&t).await);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.state_path(DEFAULT_STACK)).unwrap())
            .unwrap();
    assert!(state["expires_at"].is_string(), "{state:#}");

    // plan and status show the deadline.
    let status = t.cli().args(["status", "--output", "json"]).run().await;
    status.assert_success();
    let rows = status.json()["status"]["resources"].clone();
    let action_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "scheduled-action")
        .cloned()
        .unwrap_or_else(|| panic!("status shows the deadline: {rows:#}"));
    assert!(
        action_row["state"].as_str().unwrap().contains("in 1h5"),
        "time left: {action_row}"
    );

    // plan says what a new value would do, and changes nothing.
    let plan = t
        .cli()
        .args([
            "plan",
            "--allow-cidr",
            ALLOW_CIDR,
            "--expires-in",
            "3h",
            "--output",
            "json",
        ])
        .run()
        .await;
    plan.assert_success();
    let doc = plan.json();
    let row = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "scheduled-action")
        .cloned()
        .unwrap_or_else(|| panic!("plan shows the deadline: {doc:#}"));
    assert_eq!(row["action"], "repair", "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("move the deadline"),
        "{row}"
    );
    assert_eq!(
        scheduled_action(&t).await.unwrap().0,
        at,
        "plan changed the deadline"
    );

    // A second up moves the deadline; the sizes stay 0/0/0.
    t.cli().args(up("3h")).run().await.assert_success();
    let (moved, ..) = scheduled_action(&t).await.unwrap();
    assert!(
        near(moved, Duration::from_secs(3 * 3600)),
        "moved to {moved}"
    );
    assert_eq!(schedule(&t).await.unwrap().0, moved);

    // What AWS does at the deadline, done by hand (moto runs no schedule): nothing runs.
    t.aws
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name("l5d-demo-asg")
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .send()
        .await
        .unwrap();
    t.aws
        .ec2
        .terminate_instances()
        .instance_ids(&consul[0])
        .send()
        .await
        .unwrap();
    let (c, n) = running(&t).await;
    assert!(c.is_empty() && n.is_empty(), "still running: {c:?} {n:?}");

    // up brings it back, and the schedule follows the new consul server.
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await
        .assert_success();
    let (c, n) = running(&t).await;
    assert_eq!((c.len(), n.len()), (1, 2), "{c:?} {n:?}");
    let (_, input) = schedule(&t).await.expect("still scheduled");
    assert!(
        input.contains(&c[0]),
        "follows the new consul server: {input}"
    );

    // never removes the deadline, and what carried it out.
    t.cli().args(up("never")).run().await.assert_success();
    assert_eq!(scheduled_action(&t).await, None);
    assert_eq!(schedule(&t).await, None);
    assert!(!role_exists(&t).await);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.state_path(DEFAULT_STACK)).unwrap())
            .unwrap();
    assert!(state.get("expires_at").is_none(), "{state:#}");

    // down removes them too.
    t.cli().args(up("1h")).run().await.assert_success();
    assert!(schedule(&t).await.is_some());
    t.cli().args(["down", "--yes"]).run().await.assert_success();
    assert_eq!(schedule(&t).await, None);
    assert!(!role_exists(&t).await);
    let orphans = t.aws.inventory().await.orphans();
    assert!(orphans.is_empty(), "{orphans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_expires_in_is_refused_before_any_aws_call() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    for (bad, says) in [
        ("5m", "from 15m to 720h"),
        ("soon", "invalid duration"),
        ("9000h", "from 15m to 720h"),
    ] {
        let out = t.cli_via(&proxy).args(up(bad)).run().await;
        assert_eq!(out.code, Some(2), "{out}");
        assert!(
            out.stderr.contains(bad) && out.stderr.contains(says),
            "{out}"
        );
    }
    assert!(proxy.call_names().is_empty(), "{:?}", proxy.call_names());
}
