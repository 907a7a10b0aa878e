//! What real AWS does and moto does not: ListTasks refusing `startedBy` with other filters,
//! idempotency tokens answered with the first call's result (so never reused for another
//! resource, and within each API's length), IAM entities that other services see only
//! seconds later, the ECS service-linked role, daemons whose tasks keep stopping, and
//! deletions refused while something lets go. The rules layer plays most of it with short
//! delays; the proxy scripts longer runs of refusals with AWS's own codes and messages.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::reliability::carried_out;
use crate::support::*;

fn up_no_wait() -> Vec<&'static str> {
    vec!["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"]
}

/// A form parameter of an EC2 or query-protocol request body.
fn form_param(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// A member of an ECS (JSON protocol) request body.
fn json_param(body: &str, key: &str) -> Option<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get(key)
        .cloned()
}

/// The idempotency tokens the calls of `operation` carried, in order.
fn tokens(proxy: &Proxy, operation: &str) -> Vec<String> {
    proxy
        .calls()
        .iter()
        .filter(|c| c.operation == operation)
        .filter_map(|c| {
            form_param(&c.body, "ClientToken").or_else(|| {
                json_param(&c.body, "clientToken").and_then(|v| v.as_str().map(str::to_string))
            })
        })
        .collect()
}

fn assert_token_fits(token: &str, max: usize, what: &str) {
    assert!(
        !token.is_empty() && token.len() <= max && token.bytes().all(|b| (33..=126).contains(&b)),
        "{what} token {token:?} must be 1 to {max} printable ASCII characters"
    );
}

// ---------------------------------------------------------------------------------------------
// ListTasks
// ---------------------------------------------------------------------------------------------

/// The filters of one ListTasks request, pagination left out.
fn list_tasks_filters(body: &str) -> BTreeSet<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .map(|o| {
            o.keys()
                .filter(|k| !matches!(k.as_str(), "nextToken" | "maxResults"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_tasks_never_sends_started_by_with_another_filter() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();
    t.aws.register_container_instances(DEFAULT_STACK).await;
    let proxy = t.proxy().await;
    for args in [
        vec!["deploy", "hello-world", "--count", "2"],
        vec!["deploy", "hello-world", "--count", "2"],
        vec!["deploy", "hello-world", "--count", "1"],
        vec!["status"],
        vec!["status", "--discover"],
        vec!["undeploy", "hello-world"],
        vec!["down", "--yes"],
    ] {
        t.cli_via(&proxy).args(args).run().await.assert_success();
    }
    let list_tasks: Vec<BTreeSet<String>> = proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "ListTasks")
        .map(|c| list_tasks_filters(&c.body))
        .collect();
    assert!(
        list_tasks.iter().any(|f| f.contains("startedBy")),
        "deploy finds its tasks by startedBy: {list_tasks:?}"
    );
    for filters in &list_tasks {
        if filters.contains("startedBy") {
            let others: Vec<&String> = filters
                .iter()
                .filter(|k| !matches!(k.as_str(), "startedBy" | "cluster"))
                .collect();
            assert!(
                others.is_empty(),
                "ECS answers InvalidParameterException to startedBy with {others:?}"
            );
        }
    }
    // The one RunTask carried a token of its own within ECS's 64 characters.
    let run_task = tokens(&proxy, "RunTask");
    assert_eq!(run_task.len(), 1, "{}", proxy.log());
    assert_token_fits(&run_task[0], 64, "RunTask");
}

// ---------------------------------------------------------------------------------------------
// Idempotency tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_fit_each_api_and_a_partial_down_then_up_never_replays_one() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(up_no_wait())
        .run()
        .await
        .assert_success();
    let first = tokens(&proxy, "RunInstances");
    assert_eq!(first.len(), 1, "{}", proxy.log());
    assert_token_fits(&first[0], 64, "RunInstances");
    // A service refused for now is sent again with its own token: one token per service.
    let services: BTreeSet<String> = tokens(&proxy, "CreateService").into_iter().collect();
    assert_eq!(services.len(), DAEMONS.len(), "{}", proxy.log());
    for token in &services {
        assert_token_fits(token, 36, "CreateService");
    }
    assert!(!services.contains(&first[0]), "tokens are never shared");
    let state = t.state_path(DEFAULT_STACK);
    let lineage = read_state(&state)["lineage"].clone();
    assert!(
        read_state(&state)["resources"]
            .get("pending_creates")
            .is_none(),
        "every token is spent once its resource is recorded"
    );

    // A partial down: the consul server goes, the security group stays in use.
    proxy.clear();
    proxy.fail(
        "DeleteSecurityGroup",
        FaultResponse::dependency_violation(&format!("{DEFAULT_STACK}-sg")),
    );
    let down = t
        .cli_via(&proxy)
        .args(["down", "--yes", "--timeout", "2s"])
        .run()
        .await;
    down.assert_code(1);
    assert!(t
        .aws
        .snapshot(DEFAULT_STACK)
        .await
        .consul_instances
        .is_empty());
    assert_eq!(read_state(&state)["lineage"], lineage, "same state lineage");

    // The next up starts a new consul server: EC2 would answer its first token with the
    // terminated one.
    proxy.clear_faults();
    proxy.clear();
    t.cli_via(&proxy)
        .args(up_no_wait())
        .run()
        .await
        .assert_success();
    let second = tokens(&proxy, "RunInstances");
    assert_eq!(second.len(), 1, "{}", proxy.log());
    assert_ne!(second[0], first[0], "a new resource must get a new token");
    assert_token_fits(&second[0], 64, "RunInstances");
    for token in tokens(&proxy, "CreateService") {
        assert!(!services.contains(&token), "CreateService replayed {token}");
    }
    let snap = t.aws.snapshot(DEFAULT_STACK).await;
    snap.assert_complete(DEFAULT_STACK);
    t.cli().args(["down", "--yes"]).run().await.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_template_token_fits_and_is_spent() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args([
            "up",
            "--allow-cidr",
            ALLOW_CIDR,
            "--no-wait",
            "--launch-template",
        ])
        .run()
        .await
        .assert_success();
    let lt = tokens(&proxy, "CreateLaunchTemplate");
    assert_eq!(lt.len(), 1, "{}", proxy.log());
    assert_token_fits(&lt[0], 64, "CreateLaunchTemplate");
    assert!(read_state(&t.state_path(DEFAULT_STACK))["resources"]
        .get("pending_creates")
        .is_none());
}

// ---------------------------------------------------------------------------------------------
// IAM propagation and the ECS service-linked role
// ---------------------------------------------------------------------------------------------

const PROFILE_REFUSED_BY_ASG: &str = "You must use a valid fully-formed launch template. Value \
     (ecsInstanceRole) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance \
     Profile name";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_profile_is_waited_for_on_the_launch_configuration_path() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    proxy.fail_times(
        "CreateLaunchConfiguration",
        2,
        FaultResponse::query(
            400,
            "ValidationError",
            "Invalid IamInstanceProfile: ecsInstanceRole",
        ),
    );
    let up = t.cli_via(&proxy).args(up_no_wait()).run().await;
    up.assert_success();
    assert!(
        proxy.count("CreateLaunchConfiguration") >= 3,
        "{}",
        proxy.log()
    );
    assert_eq!(carried_out(&proxy.calls(), "CreateLaunchConfiguration"), 1);
    assert!(
        up.stderr.contains("waiting up to 2m"),
        "says what it waits for\n{up}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_profile_is_waited_for_on_the_launch_template_path() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    proxy.fail_times(
        "CreateAutoScalingGroup",
        3,
        FaultResponse::query(400, "ValidationError", PROFILE_REFUSED_BY_ASG),
    );
    let started = Instant::now();
    let up = t
        .cli_via(&proxy)
        .args([
            "up",
            "--allow-cidr",
            ALLOW_CIDR,
            "--no-wait",
            "--launch-template",
        ])
        .run()
        .await;
    up.assert_success();
    assert!(
        proxy.count("CreateAutoScalingGroup") >= 4,
        "{}",
        proxy.log()
    );
    assert_eq!(carried_out(&proxy.calls(), "CreateAutoScalingGroup"), 1);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "three refusals cost {:?}: the first retries come within a second",
        started.elapsed()
    );
    assert!(
        up.all_lower().contains("instance profile"),
        "says what it waits for\n{up}"
    );
    t.aws
        .snapshot(DEFAULT_STACK)
        .await
        .assert_complete(DEFAULT_STACK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecs_service_linked_role_is_made_with_the_cluster_and_waited_for() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    proxy.fail_times(
        "CreateService",
        2,
        FaultResponse::json(
            400,
            "InvalidParameterException",
            "Unable to assume the service linked role. Please verify that the ECS service \
             linked role exists.",
        ),
    );
    t.cli_via(&proxy)
        .args(up_no_wait())
        .run()
        .await
        .assert_success();
    let slr: Vec<Call> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == "CreateServiceLinkedRole")
        .collect();
    assert!(!slr.is_empty(), "{}", proxy.log());
    assert!(slr
        .iter()
        .all(|c| form_param(&c.body, "AWSServiceName").as_deref() == Some("ecs.amazonaws.com")));
    assert_eq!(
        carried_out(&proxy.calls(), "CreateService"),
        DAEMONS.len(),
        "each daemon service made once\n{}",
        proxy.log()
    );

    // It exists now: a second stack's cluster finds it so, and that is fine.
    proxy.clear_faults();
    proxy.clear();
    let other = t
        .cli_via(&proxy)
        .args(["--stack", "other"])
        .args(up_no_wait())
        .run()
        .await;
    other.assert_success();
    assert!(!other.stderr.contains("service-linked role"), "{other}");

    // Account-wide and AWS's: down leaves it.
    for stack in [DEFAULT_STACK, "other"] {
        t.cli()
            .args(["--stack", stack, "down", "--yes"])
            .run()
            .await
            .assert_success();
    }
    t.aws
        .iam
        .get_role()
        .role_name("AWSServiceRoleForECS")
        .send()
        .await
        .expect("the ECS service-linked role is still there after down");
}

// ---------------------------------------------------------------------------------------------
// up waits for the mesh
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_stops_waiting_for_a_daemon_whose_tasks_keep_stopping_and_says_why() {
    let t = TestEnv::new().await;
    let reason = "CannotPullContainerError: pull access denied for buoyantio/linkerd";
    // Every linkerd task stops as soon as it starts, as with an image that cannot be pulled.
    t.moto.configure(serde_json::json!({
        "daemon_faults": {
            format!("{DEFAULT_STACK}-linkerd"): {
                "stoppedReason": reason,
                "stopCode": "TaskFailedToStart",
                "exitCode": 1,
                "reason": "CannotPullContainerError",
            }
        }
    }));
    let started = Instant::now();
    let (out, _) = t
        .run_as_agent(
            t.cli()
                .args(["up", "--allow-cidr", ALLOW_CIDR, "--wait-timeout", "3m"]),
            Duration::from_secs(150),
        )
        .await;
    out.assert_code(1);
    assert!(
        out.stderr.contains(&format!("{DEFAULT_STACK}-linkerd")) && out.stderr.contains(reason),
        "names the daemon and ECS's reason\n{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "gave up early, not at the 3m timeout: {:?}",
        started.elapsed()
    );

    // status shows the stopped tasks and why.
    let status = t.cli().args(["status", "--output", "json"]).run().await;
    status.assert_success();
    let stopped = status.json()["status"]["stopped_tasks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        stopped.iter().any(|s| {
            s["family"] == format!("{DEFAULT_STACK}-linkerd")
                && s["reason"].as_str().is_some_and(|r| r.contains(reason))
        }),
        "status lists the stopped linkerd tasks with their reason\n{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wait_skips_the_wait_for_the_daemons() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(up_no_wait())
        .run()
        .await
        .assert_success();
    assert_eq!(proxy.count("ListTasks"), 0, "{}", proxy.log());
    assert_eq!(proxy.count("ListContainerInstances"), 0, "{}", proxy.log());
}

// ---------------------------------------------------------------------------------------------
// down under realistic delays
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_waits_out_what_ecs_keeps_a_while_and_says_so() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();
    t.aws.register_container_instances(DEFAULT_STACK).await;
    let proxy = t.proxy().await;
    // Deleted services stay DRAINING, deregistered instances and their tasks linger.
    proxy.fail_times(
        "DeleteCluster",
        1,
        FaultResponse::cluster_contains("Services"),
    );
    proxy.fail_times(
        "DeleteCluster",
        1,
        FaultResponse::cluster_contains("ContainerInstances"),
    );
    proxy.fail_times("DeleteCluster", 1, FaultResponse::cluster_contains("Tasks"));
    proxy.fail_times(
        "DeleteSecurityGroup",
        2,
        FaultResponse::dependency_violation(&format!("{DEFAULT_STACK}-sg")),
    );
    let down = t.cli_via(&proxy).args(["down", "--yes"]).run().await;
    down.assert_success();
    assert!(proxy.count("DeleteCluster") >= 4, "{}", proxy.log());
    assert!(proxy.count("DeleteSecurityGroup") >= 3, "{}", proxy.log());
    let text = down.all_lower();
    assert!(
        text.contains("waiting up to")
            && text.contains("cluster")
            && text.contains("security group"),
        "down says what it waits for\n{down}"
    );
    let left = t.aws.snapshot(DEFAULT_STACK).await.leftovers();
    assert!(
        left.is_empty(),
        "down left {left:?}\n{down}\n{}",
        proxy.log()
    );
}
