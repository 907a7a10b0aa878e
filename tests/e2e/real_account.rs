//! The main job on a fresh account as AWS really behaves: moto behind the AWS rules layer,
//! with a new instance profile unknown to EC2 and Auto Scaling for a while, the ECS
//! service-linked role not usable at once, network interfaces that linger after
//! termination, an auto scaling group that takes time to delete and services that drain.
//! On both the launch-configuration and the launch-template path: `up`, `deploy
//! hello-world --count 12`, `--count 2`, `deploy linkerd-viz`, `status`, `undeploy
//! linkerd-viz`, `up` after the consul server was terminated by hand, and `down --yes` all
//! complete, break no rule (TestEnv's drop fails the test otherwise), and leave nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::*;

/// A fresh account's delays, long enough that a tool which does not wait fails.
fn fresh_account_delays() -> serde_json::Value {
    serde_json::json!({"delays": {
        // Long enough that the launch configuration or the ASG (launch template) always comes
        // before the profile is known, so the wait for it is always exercised.
        "instance_profile": 4.0,
        // Longer than anything before the first CreateService can take on a busy machine, so
        // that call is always refused first and `up` has to wait.
        "service_linked_role": 5.0,
        "eni_release": 1.5,
        "asg_delete": 1.5,
        "service_drain": 1.5,
    }})
}

async fn run_as_agent(t: &TestEnv, args: &[&str]) -> Output {
    t.run_as_agent(t.cli().args(args.iter().copied()), Duration::from_secs(180))
        .await
        .0
}

/// Tasks not STOPPED in the stack's cluster, by `group` (`service:<name>` for daemons,
/// `family:<family>` for tasks the tool ran).
async fn tasks_by_group(aws: &Aws) -> BTreeMap<String, Vec<aws_sdk_ecs::types::Task>> {
    let mut arns = Vec::new();
    let mut pages = aws
        .ecs
        .list_tasks()
        .cluster(DEFAULT_STACK)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        arns.extend(page.expect("ListTasks").task_arns().iter().cloned());
    }
    let mut out: BTreeMap<String, Vec<aws_sdk_ecs::types::Task>> = BTreeMap::new();
    for chunk in arns.chunks(100) {
        let described = aws
            .ecs
            .describe_tasks()
            .cluster(DEFAULT_STACK)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .expect("DescribeTasks");
        for task in described.tasks() {
            if task.last_status() == Some("RUNNING") {
                out.entry(task.group().unwrap_or_default().to_string())
                    .or_default()
                    .push(task.clone());
            }
        }
    }
    out
}

async fn running_in_family(aws: &Aws, app: &str) -> usize {
    let group = format!("family:{DEFAULT_STACK}-{app}");
    tasks_by_group(aws)
        .await
        .get(&group)
        .map_or(0, |tasks| tasks.len())
}

/// Each ACTIVE container instance runs one task of each daemon service.
async fn assert_daemons_on_every_node(aws: &Aws) {
    let active: Vec<String> = aws
        .container_instances(DEFAULT_STACK)
        .await
        .into_iter()
        .filter(|(_, status)| status == "ACTIVE")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(active.len(), 2, "two nodes joined: {active:?}");
    let groups = tasks_by_group(aws).await;
    for daemon in ["linkerd", "consul-agent", "consul-registrator"] {
        let group = format!("service:{DEFAULT_STACK}-{daemon}");
        let tasks = groups.get(&group).cloned().unwrap_or_default();
        assert_eq!(
            tasks.len(),
            active.len(),
            "{group}: one RUNNING task per ACTIVE node, got {tasks:?}"
        );
    }
}

fn consistency_refusals(t: &TestEnv) -> Vec<String> {
    t.moto
        .world_events()
        .iter()
        .filter(|e| e["kind"] == "refused")
        .map(|e| e["rule"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn lifecycle(launch_template: bool) {
    // The delays must outlast what comes before the calls they refuse, which a machine busy
    // with other tests would stretch: this test has the machine to itself.
    let t = TestEnv::alone().await;
    assert!(
        t.aws.role("ecsInstanceRole").await.is_none(),
        "a fresh account has no ecsInstanceRole"
    );
    t.moto.configure(fresh_account_delays());

    let mut up = vec!["up", "--allow-cidr", ALLOW_CIDR, "--wait-timeout", "120s"];
    if launch_template {
        up.push("--launch-template");
    }
    run_as_agent(&t, &up).await.assert_success();
    let refusals = consistency_refusals(&t);
    for (delay, what) in [
        (
            "instance_profile",
            "the new instance profile, while it propagated",
        ),
        (
            "service_linked_role",
            "CreateService, until the service-linked role was usable",
        ),
    ] {
        assert!(
            refusals.iter().any(|r| r == delay),
            "AWS refused {what}, and up waited: {refusals:?}"
        );
    }
    assert_daemons_on_every_node(&t.aws).await;
    if launch_template {
        assert!(t
            .aws
            .launch_template(&format!("{DEFAULT_STACK}-lt"))
            .await
            .is_some());
    } else {
        assert!(t
            .aws
            .launch_configuration(&format!("{DEFAULT_STACK}-lc"))
            .await
            .is_some());
    }

    t.cli()
        .args(["deploy", "hello-world", "--count", "12"])
        .run()
        .await
        .assert_success();
    assert_eq!(running_in_family(&t.aws, "hello-world").await, 12);
    t.cli()
        .args(["deploy", "hello-world", "--count", "2"])
        .run()
        .await
        .assert_success();
    assert_eq!(running_in_family(&t.aws, "hello-world").await, 2);
    t.cli()
        .args(["deploy", "linkerd-viz"])
        .run()
        .await
        .assert_success();
    assert_eq!(running_in_family(&t.aws, "linkerd-viz").await, 1);
    t.cli().arg("status").run().await.assert_success();
    t.cli()
        .args(["undeploy", "linkerd-viz"])
        .run()
        .await
        .assert_success();
    assert_eq!(running_in_family(&t.aws, "linkerd-viz").await, 0);
    assert_eq!(running_in_family(&t.aws, "hello-world").await, 2);

    // The consul server terminated by hand: `up` starts a new one, which runs.
    let server_name = format!("{DEFAULT_STACK}-consul-server");
    let old: Vec<String> = t
        .aws
        .live_instances(&server_name)
        .await
        .iter()
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    assert_eq!(old.len(), 1, "one consul server: {old:?}");
    t.aws
        .ec2
        .terminate_instances()
        .set_instance_ids(Some(old.clone()))
        .send()
        .await
        .expect("TerminateInstances");
    run_as_agent(&t, &up).await.assert_success();
    let now: Vec<(String, String)> = t
        .aws
        .live_instances(&server_name)
        .await
        .iter()
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_string(),
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(now.len(), 1, "one live consul server after up: {now:?}");
    assert_ne!(now[0].0, old[0], "a new server, not the terminated one");
    assert_eq!(now[0].1, "running");

    t.cli().args(["down", "--yes"]).run().await.assert_success();
    let left = t.aws.inventory().await.orphans();
    assert!(left.is_empty(), "down left: {left:?}");
    assert!(!t.state_path(DEFAULT_STACK).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_account_lifecycle_with_a_launch_configuration() {
    lifecycle(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_account_lifecycle_with_a_launch_template() {
    lifecycle(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_names_a_daemon_that_cannot_start_with_ecs_reason() {
    let t = TestEnv::new().await;
    let reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s): \
                  failed to resolve ref docker.io/buoyantio/linkerd:1.7.5: not found";
    t.moto.configure(serde_json::json!({"daemon_faults": {
        format!("{DEFAULT_STACK}-linkerd"): {
            "stoppedReason": reason,
            "stopCode": "TaskFailedToStart",
            "exitCode": 137,
            "reason": "OutOfMemoryError: Container killed due to memory usage",
        }
    }}));
    let started = Instant::now();
    let out = run_as_agent(
        &t,
        &["up", "--allow-cidr", ALLOW_CIDR, "--wait-timeout", "120s"],
    )
    .await;
    out.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "up stops waiting early when a daemon's tasks keep stopping ({:?})",
        started.elapsed()
    );
    for needle in [
        format!("{DEFAULT_STACK}-linkerd"),
        "CannotPullContainerError".to_string(),
        "137".to_string(),
        "OutOfMemoryError".to_string(),
    ] {
        assert!(out.stderr.contains(&needle), "up names {needle}\n{out}");
    }
    // The other daemons run; the stack stays recorded for a later up or down.
    let groups = tasks_by_group(&t.aws).await;
    assert!(groups.contains_key(&format!("service:{DEFAULT_STACK}-consul-agent")));
    assert!(t.state_path(DEFAULT_STACK).is_file());

    // status shows the same reason for the daemon.
    let status = t.cli().arg("status").run().await;
    status.assert_success();
    assert!(
        status.stdout.contains("CannotPullContainerError"),
        "status shows why the daemon's tasks stopped\n{status}"
    );

    t.moto.configure(serde_json::json!({"daemon_faults": {}}));
    t.cli().args(["down", "--yes"]).run().await.assert_success();
    assert!(t.aws.inventory().await.orphans().is_empty());
}
