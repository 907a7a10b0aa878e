//! `up` without `--no-wait`: it waits for `--desired` container instances to join the
//! cluster. moto has no ECS agent, so the test plays it.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_waits_until_the_nodes_join_the_cluster() {
    let t = TestEnv::new().await;
    let (out, joined) = t
        .run_as_agent(
            t.cli()
                .args(["up", "--allow-cidr", ALLOW_CIDR, "--wait-timeout", "60s"]),
            Duration::from_secs(90),
        )
        .await;
    out.assert_success();
    assert_eq!(joined.len(), 2, "two nodes joined: {joined:?}\n{out}");
    let instances = t.aws.container_instances(DEFAULT_STACK).await;
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(instances.values().all(|s| s == "ACTIVE"), "{instances:?}");
    t.aws
        .snapshot(DEFAULT_STACK)
        .await
        .assert_complete(DEFAULT_STACK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_fails_when_no_node_joins_before_the_timeout() {
    let t = TestEnv::new().await;
    let started = Instant::now();
    let out = t
        .cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--wait-timeout", "2s"])
        .spawn()
        .finish(Duration::from_secs(120))
        .await;
    out.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a 2s wait took {:?}",
        started.elapsed()
    );
    // The infrastructure stays (and is recorded) so a later `up` or `down` can pick it up.
    let snap = t.aws.snapshot(DEFAULT_STACK).await;
    snap.assert_complete(DEFAULT_STACK);
    assert!(t.state_path(DEFAULT_STACK).is_file());
    // The message says which instances never joined.
    let nodes: Vec<String> = snap
        .node_instances
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        nodes.iter().any(|id| out.stderr.contains(id.as_str())),
        "the timeout must name the instances that never joined ({nodes:?})\n{out}"
    );
}
