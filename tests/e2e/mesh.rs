//! The mesh at work (issue 3): `deploy`, `undeploy`, `status`, `logs`, `dashboard`, `tunnel`
//! against moto with the stand-in ECS agent, and `verify` and `load` against the node stand-in
//! (`tests/standins/node.py`: one node's linkerd, consul agent, helloworld apps and
//! linkerd-viz on loopback). Assertions read AWS state back through the SDK, or the stand-in's
//! own request counters; of the tool's output only the exit code and the `--output json`
//! document are used.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::mesh_support::*;
use crate::support::*;

const ROUTE: &str = "route hello -> world";
const DTAB: &str = "per-request dtab -> world-v2";
const ADMIN: &str = "linkerd admin /admin/ping";
const CONSUL: &str = "consul leader and catalog";
const VIZ: &str = "linkerd-viz dashboard";

/// `up --no-wait`, then the stand-in ECS agent registers both nodes. Returns their ids.
async fn up_and_join(t: &TestEnv) -> Vec<String> {
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await
        .assert_success();
    let mut joined = t.aws.register_container_instances(DEFAULT_STACK).await;
    joined.sort();
    assert_eq!(joined.len(), 2, "two nodes joined: {joined:?}");
    joined
}

/// Runs `l5d-ecs <args> --output json` to completion.
async fn run_json(cli: Cli, args: &[&str]) -> (Output, serde_json::Value) {
    let out = cli
        .args(args.iter().copied())
        .args(["--output", "json"])
        .run()
        .await;
    let json = out.json();
    (out, json)
}

fn ids(tasks: &[aws_sdk_ecs::types::Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .map(|t| task_id(t.task_arn().unwrap_or_default()))
        .collect()
}

/// The expected address of a node, as the issue asks: public DNS name, else public IP, else
/// private IP.
fn reachable_host(i: &aws_sdk_ec2::types::Instance) -> String {
    [
        i.public_dns_name(),
        i.public_ip_address(),
        i.private_ip_address(),
    ]
    .into_iter()
    .flatten()
    .find(|s| !s.is_empty())
    .unwrap_or_else(|| panic!("instance {:?} has no address", i.instance_id()))
    .to_string()
}

/// A CLI run with no AWS behind it: verify/load with `--node` must not need one.
fn offline_cli(dir: &tempfile::TempDir) -> Cli {
    std::fs::create_dir_all(dir.path().join("home")).expect("home");
    Cli::new(dir.path(), DEAD_URL)
}

// ---------------------------------------------------------------------------------------------
// deploy / undeploy
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_twice_starts_no_extra_task_and_a_new_count_converges() {
    let t = TestEnv::new().await;
    up_and_join(&t).await;

    let (out, report) = run_json(t.cli(), &["deploy", "hello-world"]).await;
    out.assert_success();
    assert_eq!(report["ok"], true, "{out}");
    let first = started_app_tasks(&t.aws, "hello-world").await;
    assert_eq!(first.len(), 2, "default --count is 2: {first:#?}");

    // The JSON document names the tasks and the nodes they landed on, as read back.
    let placed = task_instances(&t.aws, &first).await;
    let reported: BTreeMap<String, String> = report["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {report:#}"))
        .iter()
        .map(|task| {
            (
                task["task_id"].as_str().unwrap_or_default().to_string(),
                task["instance_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let actual: BTreeMap<String, String> = placed
        .iter()
        .map(|(arn, ec2)| (task_id(arn), ec2.clone()))
        .collect();
    assert_eq!(
        reported, actual,
        "tasks and nodes in the JSON report\n{out}"
    );

    // Again: nothing started, nothing stopped.
    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(["deploy", "hello-world"])
        .run()
        .await
        .assert_success();
    assert_eq!(
        proxy.count("RunTask") + proxy.count("StartTask") + proxy.count("StopTask"),
        0,
        "a second deploy must not start or stop tasks: {:?}",
        proxy.call_names()
    );
    let second = started_app_tasks(&t.aws, "hello-world").await;
    assert_eq!(ids(&first), ids(&second), "the same two tasks run");

    // --count 3 starts one more, keeping the two.
    t.cli()
        .args(["deploy", "hello-world", "--count", "3"])
        .run()
        .await
        .assert_success();
    let three = started_app_tasks(&t.aws, "hello-world").await;
    assert_eq!(three.len(), 3, "{three:#?}");
    assert!(
        ids(&three).is_superset(&ids(&first)),
        "the first two keep running"
    );

    // --count 1 stops two; exactly one runs.
    t.cli()
        .args(["deploy", "hello-world", "--count", "1"])
        .run()
        .await
        .assert_success();
    let one = started_app_tasks(&t.aws, "hello-world").await;
    assert_eq!(one.len(), 1, "{one:#?}");
    assert!(ids(&three).is_superset(&ids(&one)));

    // And --count 1 again changes nothing.
    proxy.clear();
    t.cli_via(&proxy)
        .args(["deploy", "hello-world", "--count", "1"])
        .run()
        .await
        .assert_success();
    assert_eq!(proxy.count("RunTask") + proxy.count("StopTask"), 0);
    assert_eq!(
        ids(&one),
        ids(&started_app_tasks(&t.aws, "hello-world").await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_without_a_container_instance_fails_and_starts_nothing() {
    let t = TestEnv::new().await;
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await
        .assert_success();
    // No agent: no node has joined.
    assert!(t.aws.container_instances(DEFAULT_STACK).await.is_empty());

    let proxy = t.proxy().await;
    let (out, report) = run_json(t.cli_via(&proxy), &["deploy", "hello-world"]).await;
    out.assert_code(1);
    assert_eq!(report["ok"], false, "{out}");
    assert!(
        report["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the JSON document carries the error\n{out}"
    );
    assert_eq!(
        proxy.count("RunTask") + proxy.count("StartTask"),
        0,
        "no task may be started: {:?}",
        proxy.call_names()
    );
    assert!(tasks_of(&t.aws, &family("hello-world")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeploy_stops_the_apps_tasks() {
    let t = TestEnv::new().await;
    up_and_join(&t).await;
    t.cli()
        .args(["deploy", "hello-world"])
        .run()
        .await
        .assert_success();
    t.cli()
        .args(["deploy", "linkerd-viz"])
        .run()
        .await
        .assert_success();
    let hello = started_app_tasks(&t.aws, "hello-world").await;
    assert_eq!(hello.len(), 2);

    t.cli()
        .args(["undeploy", "hello-world"])
        .run()
        .await
        .assert_success();
    assert!(started_app_tasks(&t.aws, "hello-world").await.is_empty());
    // Each stopped task is STOPPED; linkerd-viz is untouched.
    let arns: Vec<String> = hello
        .iter()
        .filter_map(|t| t.task_arn().map(str::to_string))
        .collect();
    let described = t
        .aws
        .ecs
        .describe_tasks()
        .cluster(DEFAULT_STACK)
        .set_tasks(Some(arns))
        .send()
        .await
        .expect("describe_tasks");
    assert!(
        described
            .tasks()
            .iter()
            .all(|t| t.desired_status() == Some("STOPPED")),
        "{:#?}",
        described.tasks()
    );
    assert_eq!(started_app_tasks(&t.aws, "linkerd-viz").await.len(), 1);

    // Nothing left to stop: a second undeploy succeeds and stops nothing.
    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(["undeploy", "hello-world"])
        .run()
        .await
        .assert_success();
    assert_eq!(proxy.count("StopTask"), 0, "{:?}", proxy.call_names());
}

// ---------------------------------------------------------------------------------------------
// linkerd-viz address, dashboard, tunnel
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_linkerd_viz_prints_the_dashboard_of_the_node_that_runs_it() {
    let t = TestEnv::new().await;
    let nodes = up_and_join(&t).await;
    // In a default VPC nodes have a public address; moto's ASG instances do not: give them one.
    for node in &nodes {
        give_public_address(&t.aws, node).await;
    }

    let (out, report) = run_json(t.cli(), &["deploy", "linkerd-viz"]).await;
    out.assert_success();

    // Follow the chain ourselves: task -> container instance -> EC2 instance -> public DNS.
    let viz = started_app_tasks(&t.aws, "linkerd-viz").await;
    assert_eq!(viz.len(), 1, "one linkerd-viz task: {viz:#?}");
    let placed = task_instances(&t.aws, &viz).await;
    let ec2_id = placed
        .values()
        .next()
        .unwrap_or_else(|| panic!("the viz task runs on no registered instance: {viz:#?}"));
    let host = instance(&t.aws, ec2_id).await;
    let dns = host.public_dns_name().unwrap_or_default();
    assert!(!dns.is_empty(), "moto gave {ec2_id} no public DNS name");

    let url = address(&report, "linkerd-viz")
        .unwrap_or_else(|| panic!("no linkerd-viz address in the JSON report\n{out}"));
    assert_eq!(
        url.trim_end_matches('/'),
        format!("http://{dns}:3000"),
        "\n{out}"
    );
    let reported = report["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["app"] == "linkerd-viz"))
        .unwrap_or_else(|| panic!("no linkerd-viz task in the JSON report\n{out}"));
    assert_eq!(reported["instance_id"], ec2_id.as_str(), "\n{out}");

    // `dashboard viz` prints the same address.
    let (out, report) = run_json(t.cli(), &["dashboard", "viz", "--print"]).await;
    out.assert_success();
    assert_eq!(
        address(&report, "linkerd-viz").map(|u| url_host(&u)),
        Some(dns.to_string()),
        "\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_tunnel_after_deploy_linkerd_viz() {
    let t = TestEnv::new().await;
    let nodes = up_and_join(&t).await;
    // Before linkerd-viz runs there is no viz dashboard to print.
    let (out, report) = run_json(t.cli(), &["dashboard", "viz", "--print"]).await;
    out.assert_code(1);
    assert_eq!(report["ok"], false);
    assert!(address(&report, "linkerd-viz").is_none(), "\n{out}");

    t.cli()
        .args(["deploy", "linkerd-viz"])
        .run()
        .await
        .assert_success();
    let viz = started_app_tasks(&t.aws, "linkerd-viz").await;
    let viz_node = task_instances(&t.aws, &viz)
        .await
        .into_values()
        .next()
        .expect("the viz task's node");
    let viz_instance = instance(&t.aws, &viz_node).await;

    // moto's nodes have only a private address: the dashboards fall back to it.
    let (out, report) = run_json(t.cli(), &["dashboard", "viz", "--print"]).await;
    out.assert_success();
    let url = address(&report, "linkerd-viz").unwrap_or_else(|| panic!("no address\n{out}"));
    assert_eq!(url_host(&url), reachable_host(&viz_instance), "\n{out}");
    for (which, name, port) in [
        ("linkerd", "linkerd admin", "9990"),
        ("consul", "consul UI", "8500"),
    ] {
        let (out, report) = run_json(t.cli(), &["dashboard", which, "--print"]).await;
        out.assert_success();
        let url = address(&report, name).unwrap_or_else(|| panic!("no {name} address\n{out}"));
        let mut hosts = Vec::new();
        for node in &nodes {
            hosts.push(reachable_host(&instance(&t.aws, node).await));
        }
        assert!(
            hosts.contains(&url_host(&url)) && url.contains(&format!(":{port}")),
            "{name} at {url}, nodes {hosts:?}\n{out}"
        );
    }

    // Without a public address there is nothing to ssh to: `tunnel` fails (exit 1) and says
    // so in the JSON document, naming the node.
    let (out, report) = run_json(t.cli(), &["tunnel", "--print"]).await;
    out.assert_code(1);
    assert_eq!(report["ok"], false);
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        nodes.iter().any(|n| error.contains(n.as_str())),
        "the error names the node\n{out}"
    );

    // With public addresses (as in a default VPC) it prints the ssh command: the proxy,
    // admin and consul ports of one node, the viz port of the viz node, to ec2-user@<public>.
    let mut public = BTreeMap::new();
    for node in &nodes {
        give_public_address(&t.aws, node).await;
        public.insert(node.clone(), instance(&t.aws, node).await);
    }
    let (out, report) = run_json(t.cli(), &["tunnel", "--print", "--key", "/k/demo.pem"]).await;
    out.assert_success();
    let ssh = address(&report, "ssh").unwrap_or_else(|| panic!("no ssh command\n{out}"));
    let words: Vec<&str> = ssh.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"ssh"), "{ssh}");
    assert!(words.contains(&"-N"), "{ssh}");
    assert!(ssh.contains("-i /k/demo.pem"), "{ssh}");
    let target = words.last().copied().unwrap_or_default();
    let via = public
        .values()
        .find(|i| target == format!("ec2-user@{}", i.public_dns_name().unwrap_or("-")))
        .unwrap_or_else(|| panic!("ssh target {target} is no node's public DNS name\n{ssh}"));
    let private = via.private_ip_address().unwrap_or_default();
    for port in [4140, 9990, 8500] {
        assert!(
            ssh.contains(&format!("-L {port}:{private}:{port}")),
            "forward of {port} to {private}: {ssh}"
        );
    }
    let viz_private = viz_instance.private_ip_address().unwrap_or_default();
    assert!(
        ssh.contains(&format!("-L 3000:{viz_private}:3000")),
        "forward of 3000 to the viz node {viz_private}: {ssh}"
    );
}

// ---------------------------------------------------------------------------------------------
// status, logs, down
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_nodes_with_their_tasks() {
    let t = TestEnv::new().await;
    let nodes = up_and_join(&t).await;
    t.cli()
        .args(["deploy", "hello-world", "--count", "3"])
        .run()
        .await
        .assert_success();
    let hello = started_app_tasks(&t.aws, "hello-world").await;
    let placed = task_instances(&t.aws, &hello).await;

    let (out, report) = run_json(t.cli(), &["status"]).await;
    out.assert_success();
    let status = &report["status"];
    let listed = status["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no status.nodes\n{out}"));
    let listed_ids: Vec<String> = listed
        .iter()
        .map(|n| n["instance_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut sorted = listed_ids.clone();
    sorted.sort();
    assert_eq!(sorted, nodes, "every node, once\n{out}");

    let fam = family("hello-world");
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (arn, ec2) in &placed {
        expected
            .entry(ec2.clone())
            .or_default()
            .insert(task_id(arn));
    }
    for n in listed {
        let id = n["instance_id"].as_str().unwrap_or_default();
        assert_eq!(n["container_instance"], "ACTIVE", "{n:#}");
        assert_eq!(n["instance_state"], "running", "{n:#}");
        let got: BTreeSet<String> = n["tasks"][fam.as_str()]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            got,
            expected.get(id).cloned().unwrap_or_default(),
            "hello-world tasks on {id}\n{out}"
        );
    }
    // The UIs' addresses are there.
    assert!(address(status, "linkerd admin").is_some(), "\n{out}");
    assert!(address(status, "consul UI").is_some(), "\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_prints_the_events_of_the_container_with_node_and_task() {
    let t = TestEnv::new().await;
    let nodes = up_and_join(&t).await;
    t.cli()
        .args(["deploy", "hello-world"])
        .run()
        .await
        .assert_success();
    let hello = started_app_tasks(&t.aws, "hello-world").await;
    let placed = task_instances(&t.aws, &hello).await;
    let (arn, node) = placed.iter().next().expect("a placed hello-world task");
    let task = task_id(arn);

    // The containers would log through the awslogs driver; put the events ourselves.
    let logs = logs_client(t.moto.url(), REGION).await;
    let group = format!("/l5d-ecs/{DEFAULT_STACK}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let put = |stream: String, events: Vec<(i64, &'static str)>| {
        let logs = logs.clone();
        let group = group.clone();
        async move {
            logs.create_log_stream()
                .log_group_name(&group)
                .log_stream_name(&stream)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create_log_stream {stream}: {e:?}"));
            let mut req = logs
                .put_log_events()
                .log_group_name(&group)
                .log_stream_name(&stream);
            for (ts, msg) in events {
                req = req.log_events(
                    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                        .timestamp(ts)
                        .message(msg)
                        .build()
                        .expect("log event"),
                );
            }
            req.send()
                .await
                .unwrap_or_else(|e| panic!("put_log_events {stream}: {e:?}"));
        }
    };
    put(
        format!("hello-world/hello/{task}"),
        vec![
            (now - 20 * 60 * 1000, "hello: older than --since"),
            (now - 2000, "hello: listening on :1234"),
            (now - 1000, "hello: GET / from 172.31.0.5"),
        ],
    )
    .await;
    // (moto's FilterLogEvents ignores logStreamNamePrefix, so lines of other containers in
    // the group would come back too; that the tool asks only for hello's streams is checked
    // on the call itself below.)
    let proxy = t.proxy().await;
    let (out, report) = run_json(t.cli_via(&proxy), &["logs", "hello"]).await;
    out.assert_success();
    let filters: Vec<serde_json::Value> = proxy
        .calls()
        .iter()
        .filter(|c| c.operation == "FilterLogEvents")
        .map(|c| serde_json::from_str(&c.body).expect("FilterLogEvents body is JSON"))
        .collect();
    assert!(
        !filters.is_empty(),
        "no FilterLogEvents: {:?}",
        proxy.call_names()
    );
    for body in &filters {
        assert_eq!(body["logGroupName"], group.as_str(), "{body}");
        assert_eq!(body["logStreamNamePrefix"], "hello-world/hello/", "{body}");
    }
    let lines = report["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no logs in the JSON report\n{out}"));
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        messages,
        ["hello: listening on :1234", "hello: GET / from 172.31.0.5"],
        "hello's lines of the last 10 minutes, oldest first\n{out}"
    );
    for line in lines {
        assert_eq!(line["task"], task.as_str(), "{line:#}");
        assert_eq!(line["node"], node.as_str(), "{line:#}");
    }

    // --since reaches back further; --node filters by instance.
    let (out, report) = run_json(t.cli(), &["logs", "hello", "--since", "1h"]).await;
    out.assert_success();
    assert_eq!(report["logs"].as_array().map(Vec::len), Some(3), "\n{out}");
    let other = nodes.iter().find(|n| *n != node).expect("another node");
    let (out, report) = run_json(t.cli(), &["logs", "hello", "--node", other]).await;
    out.assert_success();
    assert!(
        report["logs"].as_array().is_none_or(Vec::is_empty),
        "no line comes from {other}\n{out}"
    );
    let (out, report) = run_json(t.cli(), &["logs", "hello", "--node", node]).await;
    out.assert_success();
    assert_eq!(report["logs"].as_array().map(Vec::len), Some(2), "\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_after_deploy_leaves_nothing_not_even_the_log_group() {
    let t = TestEnv::new().await;
    up_and_join(&t).await;
    t.cli()
        .args(["deploy", "hello-world"])
        .run()
        .await
        .assert_success();
    t.cli()
        .args(["deploy", "linkerd-viz"])
        .run()
        .await
        .assert_success();
    let logs = logs_client(t.moto.url(), REGION).await;
    let group = format!("/l5d-ecs/{DEFAULT_STACK}");
    let groups = |logs: aws_sdk_cloudwatchlogs::Client| {
        let group = group.clone();
        async move {
            logs.describe_log_groups()
                .log_group_name_prefix(&group)
                .send()
                .await
                .expect("describe_log_groups")
                .log_groups()
                .iter()
                .filter(|g| g.log_group_name() == Some(group.as_str()))
                .count()
        }
    };
    assert_eq!(groups(logs.clone()).await, 1, "up created {group}");
    let mut started = started_app_tasks(&t.aws, "hello-world").await;
    started.extend(started_app_tasks(&t.aws, "linkerd-viz").await);
    assert_eq!(started.len(), 3);

    t.cli().args(["down", "--yes"]).run().await.assert_success();

    // No task of the cluster is meant to run any more, and each one we started is stopped.
    let still = t
        .aws
        .ecs
        .list_tasks()
        .cluster(DEFAULT_STACK)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .expect("list_tasks after down")
        .task_arns()
        .to_vec();
    assert!(still.is_empty(), "tasks still running: {still:?}");
    let described = t
        .aws
        .ecs
        .describe_tasks()
        .cluster(DEFAULT_STACK)
        .set_tasks(Some(
            started
                .iter()
                .filter_map(|t| t.task_arn().map(str::to_string))
                .collect(),
        ))
        .send()
        .await
        .expect("describe_tasks after down");
    for task in described.tasks() {
        assert_eq!(task.last_status(), Some("STOPPED"), "{task:#?}");
    }
    assert_eq!(groups(logs).await, 0, "the log group {group} is gone");
    let left = t.aws.snapshot(DEFAULT_STACK).await.leftovers();
    assert!(left.is_empty(), "down left {left:?}");
}

// ---------------------------------------------------------------------------------------------
// verify against the node stand-in
// ---------------------------------------------------------------------------------------------

/// `verify --node 127.0.0.1 ... --timeout 3s --output json` against `node`, with no AWS.
async fn verify(node: &NodeStandin) -> (Output, serde_json::Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["verify".to_string()];
    args.extend(node.verify_args());
    args.extend(["--timeout", "3s", "--output", "json"].map(String::from));
    let out = offline_cli(&dir).args(args).run().await;
    let json = out.json();
    (out, json)
}

/// Panics unless exactly these checks ran, with these outcomes.
#[track_caller]
fn assert_checks(out: &Output, report: &serde_json::Value, expected: &[(&str, bool)]) {
    let got: Vec<(String, bool)> = report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in the JSON report\n{out}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["ok"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let want: Vec<(String, bool)> = expected
        .iter()
        .map(|(n, ok)| (n.to_string(), *ok))
        .collect();
    assert_eq!(got, want, "\n{out}");
    for c in report["checks"].as_array().into_iter().flatten() {
        assert!(c["attempts"].as_u64().unwrap_or(0) >= 1, "{c:#}");
        assert!(c["latency_ms"].as_f64().is_some(), "{c:#}");
        if c["ok"] == false {
            assert!(
                c["expected"].as_str().is_some_and(|s| !s.is_empty())
                    && c["got"].as_str().is_some_and(|s| !s.is_empty()),
                "a failed check says what it expected and what came back: {c:#}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_on_a_healthy_node() {
    let node = NodeStandin::healthy();
    let (out, report) = verify(&node).await;
    out.assert_success();
    assert_eq!(report["ok"], true);
    assert_checks(
        &out,
        &report,
        &[(ROUTE, true), (DTAB, true), (ADMIN, true), (CONSUL, true)],
    );
    // The replies it reports are the apps' own.
    let route = check(&report, ROUTE)["got"].as_str().unwrap_or_default();
    assert_eq!(route, "Hello (172.31.20.160) World (172.31.19.35)!!");
    let dtab = check(&report, DTAB)["got"].as_str().unwrap_or_default();
    assert_eq!(dtab, "Hello (172.31.20.160) World-V2 (172.31.19.36)!!");
    // Both went through the proxy, and hello's own call to world did too.
    let stats = node.stats();
    assert!(stats["hello_requests"].as_u64() >= Some(2), "{stats}");
    assert!(stats["world_requests"].as_u64() >= Some(1), "{stats}");
    assert!(stats["world_v2_requests"].as_u64() >= Some(1), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_with_exit_3_when_the_dtab_override_is_ignored() {
    let node = NodeStandin::start(&["--ignore-dtab"]);
    let (out, report) = verify(&node).await;
    out.assert_code(3);
    assert_eq!(report["ok"], false);
    assert_checks(
        &out,
        &report,
        &[(ROUTE, true), (DTAB, false), (ADMIN, true), (CONSUL, true)],
    );
    // The dtab request reached world, not world-v2.
    assert_eq!(node.stats()["world_v2_requests"], 0, "{}", node.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_with_exit_3_when_world_is_down() {
    let node = NodeStandin::start(&["--world-down"]);
    let (out, report) = verify(&node).await;
    out.assert_code(3);
    assert_eq!(report["ok"], false);
    assert_checks(
        &out,
        &report,
        &[(ROUTE, false), (DTAB, true), (ADMIN, true), (CONSUL, true)],
    );
    // It kept retrying until the timeout.
    assert!(
        check(&report, ROUTE)["attempts"].as_u64() > Some(1),
        "\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_with_exit_3_when_the_reply_is_garbled() {
    let node = NodeStandin::start(&["--garble"]);
    let (out, report) = verify(&node).await;
    out.assert_code(3);
    assert_eq!(report["ok"], false);
    assert_checks(
        &out,
        &report,
        &[(ROUTE, false), (DTAB, false), (ADMIN, true), (CONSUL, true)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_with_exit_3_when_consul_has_no_leader() {
    let node = NodeStandin::start(&["--no-leader"]);
    let (out, report) = verify(&node).await;
    out.assert_code(3);
    assert_checks(
        &out,
        &report,
        &[(ROUTE, true), (DTAB, true), (ADMIN, true), (CONSUL, false)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_viz_dashboard_once_linkerd_viz_is_deployed() {
    let t = TestEnv::new().await;
    up_and_join(&t).await;
    t.cli()
        .args(["deploy", "linkerd-viz"])
        .run()
        .await
        .assert_success();

    let healthy = NodeStandin::healthy();
    let mut args = vec!["verify".to_string()];
    args.extend(healthy.verify_args());
    args.extend(["--timeout", "3s"].map(String::from));
    let (out, report) = run_json(
        t.cli().env("AWS_ENDPOINT_URL", DEAD_URL),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    out.assert_success();
    assert_checks(
        &out,
        &report,
        &[
            (ROUTE, true),
            (DTAB, true),
            (ADMIN, true),
            (CONSUL, true),
            (VIZ, true),
        ],
    );

    let viz_down = NodeStandin::start(&["--viz-down"]);
    let mut args = vec!["verify".to_string()];
    args.extend(viz_down.verify_args());
    args.extend(["--timeout", "3s"].map(String::from));
    let (out, report) = run_json(
        t.cli().env("AWS_ENDPOINT_URL", DEAD_URL),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    out.assert_code(3);
    assert_checks(
        &out,
        &report,
        &[
            (ROUTE, true),
            (DTAB, true),
            (ADMIN, true),
            (CONSUL, true),
            (VIZ, false),
        ],
    );

    // Once linkerd-viz is undeployed, its dashboard is no longer checked.
    t.cli()
        .args(["undeploy", "linkerd-viz"])
        .run()
        .await
        .assert_success();
    assert!(started_app_tasks(&t.aws, "linkerd-viz").await.is_empty());
    let (out, report) = run_json(
        t.cli().env("AWS_ENDPOINT_URL", DEAD_URL),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    out.assert_success();
    assert_checks(
        &out,
        &report,
        &[(ROUTE, true), (DTAB, true), (ADMIN, true), (CONSUL, true)],
    );
}

// ---------------------------------------------------------------------------------------------
// bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_to_the_mesh_commands_is_refused_before_any_aws_call() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    for args in [
        vec!["deploy", "nginx"],
        vec!["deploy", "hello-world", "--count", "101"],
        vec!["deploy", "hello-world", "--wait-timeout", "5"],
        vec!["undeploy", "nginx"],
        vec!["logs", "nginx"],
        vec!["logs", "hello", "--since", "ten"],
        vec!["logs", "hello", "--follow", "--output", "json"],
        vec!["verify", "--timeout", "60"],
        vec!["verify", "--proxy-port", "70000"],
        vec!["dashboard", "grafana"],
        vec!["load", "--concurrency", "0"],
        vec!["load", "--duration", "forever"],
        vec!["load", "--rate", "0"],
    ] {
        let out = t.cli_via(&proxy).args(args.iter().copied()).run().await;
        out.assert_code(2);
        assert!(
            proxy.calls().is_empty(),
            "{args:?} made AWS calls: {:?}",
            proxy.call_names()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// load against the node stand-in
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_the_requests_the_node_served() {
    let node = NodeStandin::healthy();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["load".to_string()];
    args.extend(node.node_args());
    args.extend(["--duration", "2s", "--concurrency", "2", "--output", "json"].map(String::from));
    let out = offline_cli(&dir).args(args).run().await;
    out.assert_success();
    let report = out.json();
    let load = &report["load"];
    let requests = load["requests"]
        .as_u64()
        .unwrap_or_else(|| panic!("no load.requests\n{out}"));
    assert!(requests > 0, "\n{out}");
    assert_eq!(load["successes"].as_u64(), Some(requests), "\n{out}");
    assert_eq!(load["failures"].as_u64(), Some(0), "\n{out}");

    // What the node saw: one request to hello through the proxy per load request, and hello's
    // own call to world through the proxy for each.
    let stats = node.stats();
    assert_eq!(
        stats["proxy_by_service"]["hello"].as_u64(),
        Some(requests),
        "{stats}\n{out}"
    );
    assert_eq!(stats["hello_requests"].as_u64(), Some(requests), "{stats}");
    assert_eq!(
        stats["proxy_requests"].as_u64(),
        Some(2 * requests),
        "{stats}"
    );

    let lat = &load["latency_ms"];
    let p = |k: &str| {
        lat[k]
            .as_f64()
            .unwrap_or_else(|| panic!("no latency_ms.{k}\n{out}"))
    };
    assert!(
        0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"),
        "percentiles out of order: {lat}"
    );
    let rps = load["throughput_rps"].as_f64().unwrap_or(0.0);
    assert!(rps > 0.0, "\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_counts_failures_and_fails_when_nothing_succeeds() {
    let node = NodeStandin::start(&["--world-down"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["load".to_string()];
    args.extend(node.node_args());
    args.extend(["--duration", "1s", "--concurrency", "2", "--output", "json"].map(String::from));
    let out = offline_cli(&dir).args(args).run().await;
    out.assert_code(1);
    let report = out.json();
    let requests = report["load"]["requests"].as_u64().unwrap_or(0);
    assert!(requests > 0, "\n{out}");
    assert_eq!(
        report["load"]["failures"].as_u64(),
        Some(requests),
        "\n{out}"
    );
    assert_eq!(report["load"]["successes"].as_u64(), Some(0), "\n{out}");
    assert_eq!(node.proxied("hello"), requests, "{}", node.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_holds_the_requested_rate() {
    let node = NodeStandin::healthy();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["load".to_string()];
    args.extend(node.node_args());
    args.extend(
        [
            "--duration",
            "2s",
            "--concurrency",
            "2",
            "--rate",
            "10",
            "--output",
            "json",
        ]
        .map(String::from),
    );
    let out = offline_cli(&dir).args(args).run().await;
    out.assert_success();
    let report = out.json();
    let requests = report["load"]["requests"].as_u64().unwrap_or(0);
    // 10 per second for 2 seconds: about 20, far below what the node could serve.
    assert!(
        (10..=30).contains(&requests),
        "{requests} requests at --rate 10 for 2s\n{out}"
    );
    assert_eq!(node.proxied("hello"), requests, "{}", node.stats());
    // Keep the duration loosely honest too.
    let secs = report["load"]["duration_s"].as_f64().unwrap_or(0.0);
    assert!(
        Duration::from_secs_f64(secs) >= Duration::from_millis(1900),
        "ran {secs}s\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_stops_at_the_duration_even_at_a_low_rate() {
    // Measures the run's wall time: the machine to itself.
    let _alone = Machine::alone().await;
    let node = NodeStandin::healthy();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["load".to_string()];
    args.extend(node.node_args());
    args.extend(
        [
            "--duration",
            "2s",
            "--concurrency",
            "4",
            "--rate",
            "1",
            "--output",
            "json",
        ]
        .map(String::from),
    );
    let started = std::time::Instant::now();
    let out = offline_cli(&dir).args(args).run().await;
    let wall = started.elapsed();
    out.assert_success();
    let report = out.json();
    let secs = report["load"]["duration_s"].as_f64().unwrap_or(0.0);
    assert!(
        secs <= 2.5 && wall < Duration::from_millis(3500),
        "--duration 2s ran {secs:.1}s (wall {wall:?}): each worker waits for its next --rate \
         tick before it looks at the deadline\n{out}"
    );
    assert_eq!(
        node.proxied("hello"),
        report["load"]["requests"].as_u64().unwrap_or(0)
    );
}
