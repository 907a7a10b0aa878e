//! Many nodes and many tasks (issue 14): every list is read to its last page when AWS pages
//! small, per-item calls all get made, and `down` makes no StopTask for the tasks of nodes it
//! terminates anyway. The rules server pages as AWS may (`page_sizes`: at most that many
//! items an answer, then a token); assertions read AWS back through the SDK.

use std::collections::BTreeSet;

use crate::mesh_support::*;
use crate::support::*;

/// Small pages for every list and describe the tool reads more than one item of.
fn small_pages() -> serde_json::Value {
    serde_json::json!({"page_sizes": {
        "ecs:ListTasks": 2,
        "ecs:ListContainerInstances": 1,
        "ecs:ListTaskDefinitions": 1,
        "ec2:DescribeInstances": 1,
        "ec2:DescribeSecurityGroups": 1,
        "ec2:DescribeSubnets": 1,
    }})
}

/// `up --no-wait` with `nodes` nodes, which the stand-in agent then registers.
async fn up_with(t: &TestEnv, nodes: u32) -> BTreeSet<String> {
    let n = nodes.to_string();
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .args(["--min", &n, "--max", &n, "--desired", &n])
        .run()
        .await
        .assert_success();
    let joined: BTreeSet<String> = t
        .aws
        .register_container_instances(DEFAULT_STACK)
        .await
        .into_iter()
        .collect();
    assert_eq!(joined.len(), nodes as usize, "nodes joined: {joined:?}");
    joined
}

fn running_ids(tasks: &[aws_sdk_ecs::types::Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter_map(|t| t.task_arn().map(task_id))
        .collect()
}

/// `deploy hello-world --count N`, then the hello-world tasks that run, read from ECS.
async fn deploy_hello(t: &TestEnv, count: usize) -> Vec<aws_sdk_ecs::types::Task> {
    t.cli()
        .args(["deploy", "hello-world", "--count", &count.to_string()])
        .run()
        .await
        .assert_success();
    started_app_tasks(&t.aws, "hello-world").await
}

async fn assert_nothing_left(t: &TestEnv) {
    let after = t.aws.snapshot(DEFAULT_STACK).await;
    assert!(
        after.leftovers().is_empty(),
        "down left {:?}",
        after.leftovers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_is_read_to_its_last_page() {
    let t = TestEnv::new().await;
    t.moto.configure(small_pages());
    let nodes = up_with(&t, 3).await;

    let hello = deploy_hello(&t, 5).await;
    assert_eq!(hello.len(), 5, "five hello-world tasks run");

    // A second deploy of the same count sees all five (ListTasks in pages of 2) and starts
    // none.
    let again = deploy_hello(&t, 5).await;
    assert_eq!(running_ids(&again), running_ids(&hello), "no task added");

    // status: every node (DescribeInstances one reservation a page), each ACTIVE
    // (ListContainerInstances one a page), with every task (ListTasks two a page).
    let proxy = t.proxy().await;
    let out = t
        .cli_via(&proxy)
        .args(["status", "--output", "json"])
        .run()
        .await;
    out.assert_success();
    // The pages were really asked for: a listing that stopped at its first page would pass
    // the checks below only by luck.
    for (operation, token) in [
        ("ListTasks", "nextToken"),
        ("ListContainerInstances", "nextToken"),
        ("DescribeInstances", "NextToken"),
    ] {
        assert!(
            proxy
                .calls()
                .iter()
                .any(|c| c.operation == operation && c.body.contains(token)),
            "status asked for no second page of {operation}: {:?}",
            proxy.call_names()
        );
    }
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("status JSON: {e}\n{out}"));
    let listed = report["status"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no status.nodes\n{out}"));
    let listed_ids: BTreeSet<String> = listed
        .iter()
        .map(|n| n["instance_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(listed_ids, nodes, "every node, once\n{out}");
    assert!(
        listed.iter().all(|n| n["container_instance"] == "ACTIVE"),
        "every node's container instance is found\n{out}"
    );
    let fam = family("hello-world");
    let shown: BTreeSet<String> = listed
        .iter()
        .flat_map(|n| {
            n["tasks"][fam.as_str()]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(shown, running_ids(&hello), "every task, on its node\n{out}");

    // undeploy stops every one of them, not only the first page's.
    t.cli()
        .args(["undeploy", "hello-world"])
        .run()
        .await
        .assert_success();
    assert!(
        started_app_tasks(&t.aws, "hello-world").await.is_empty(),
        "undeploy left hello-world tasks running"
    );

    t.cli().args(["down", "--yes"]).run().await.assert_success();
    assert_nothing_left(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_leaves_the_tasks_of_the_nodes_it_terminates_to_go_with_them() {
    let t = TestEnv::new().await;
    up_with(&t, 3).await;
    let hello = deploy_hello(&t, 12).await;
    assert_eq!(hello.len(), 12, "RunTask batches of 10 and 2, both started");

    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    assert_eq!(
        proxy.count("StopTask"),
        0,
        "every task ran on a node that down terminated: {:?}",
        proxy.call_names()
    );
    assert_nothing_left(&t).await;
    assert!(
        !t.state_path(DEFAULT_STACK).exists(),
        "the state file goes once nothing is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeploy_stops_many_tasks_sixteen_at_a_time_through_throttling() {
    let t = TestEnv::new().await;
    up_with(&t, 4).await;
    let hello = deploy_hello(&t, 24).await;
    assert_eq!(hello.len(), 24, "three RunTask batches, all started");

    // Every call slow enough that concurrent ones overlap, and a fifth of them throttled.
    let proxy = t.proxy().await;
    proxy.set_chaos(Chaos {
        throttle: 0.2,
        ..Chaos::latency_ms(14, 100, 150)
    });
    t.cli_via(&proxy)
        .args(["undeploy", "hello-world"])
        .run()
        .await
        .assert_success();
    assert!(
        started_app_tasks(&t.aws, "hello-world").await.is_empty(),
        "undeploy left hello-world tasks running"
    );
    assert!(
        proxy.count("StopTask") >= 24,
        "one StopTask per task, and throttled ones again: {:?}",
        proxy.call_names()
    );
    // 16 at most; well over one (the exact peak depends on when each answer comes back).
    let peak = proxy.peak_in_flight("StopTask");
    assert!(
        (9..=16).contains(&peak),
        "StopTask goes up to 16 at a time, no more: {peak} at most were in flight"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.state_path(DEFAULT_STACK)).expect("the state file"),
    )
    .expect("state JSON");
    assert!(
        state["resources"]["apps"].get("hello-world").is_none(),
        "the state forgets the app: {state:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_run_task_answer_is_lost_is_found_by_its_tag_not_sent_again() {
    let t = TestEnv::new().await;
    up_with(&t, 2).await;

    // Two RunTask batches (10 and 2) at once; one answer lost on the way back.
    let proxy = t.proxy().await;
    proxy.drop_times("RunTask", 1);
    t.cli_via(&proxy)
        .args(["deploy", "hello-world", "--count", "12"])
        .run()
        .await
        .assert_success();

    let hello = started_app_tasks(&t.aws, "hello-world").await;
    assert_eq!(
        hello.len(),
        12,
        "each batch started once: {:?}",
        running_ids(&hello)
    );
    // The look-up found the lost batch's tasks by their batch tag (the other batch's
    // tasks, started beside them, are not its): no RunTask went out again.
    assert_eq!(
        proxy.count("RunTask"),
        2,
        "one RunTask per batch: {:?}",
        proxy.call_names()
    );
}
