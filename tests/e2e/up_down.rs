//! `l5d-ecs up` and `down` against moto: the guide's resources with the settings,
//! idempotence (counted through a proxy), complete teardown, JSON output.

use crate::support::checks::{assert_role_created_by_tool, assert_stack_settings, Launch};
use crate::support::*;

fn up_no_wait() -> Vec<String> {
    ["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"]
        .map(String::from)
        .to_vec()
}

/// The step subcommands in dependency order (`up` runs them all). `log-group` is the awslogs
/// group `/l5d-ecs/<stack>` the daemon services log to.
fn steps() -> Vec<Vec<&'static str>> {
    vec![
        vec!["security-group", "--allow-cidr", ALLOW_CIDR],
        vec!["consul-server"],
        vec!["cluster"],
        vec!["role-policy"],
        vec!["log-group"],
        vec!["register-tasks"],
        vec!["launch-config"],
        vec!["asg"],
        vec!["daemons"],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_creates_every_resource_with_the_guides_settings() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();

    assert_stack_settings(&t.aws, DEFAULT_STACK, &[ALLOW_CIDR], Launch::Configuration).await;
    assert_role_created_by_tool(&t.aws).await;
    t.aws
        .snapshot(DEFAULT_STACK)
        .await
        .assert_complete(DEFAULT_STACK);

    // Nodes carry the propagated tags.
    for node in t.aws.live_instances(&format!("{DEFAULT_STACK}-ecs")).await {
        assert!(
            node.tags()
                .iter()
                .any(|tag| tag.key() == Some(STACK_TAG) && tag.value() == Some(DEFAULT_STACK)),
            "node {:?} tags {:?}",
            node.instance_id(),
            node.tags()
        );
    }

    assert_state_file(&t.state_path(DEFAULT_STACK), DEFAULT_STACK, REGION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_up_makes_no_mutating_call() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    before.assert_complete(DEFAULT_STACK);
    let role_before = t.aws.role(INSTANCE_ROLE).await;
    let profile_before = t.aws.instance_profile(INSTANCE_ROLE).await;

    // AWS_ENDPOINT_URL points nowhere: every call must follow --endpoint-url through the proxy.
    let proxy = t.proxy().await;
    t.cli_with_endpoint_flag(&proxy)
        .args(up_no_wait())
        .run()
        .await
        .assert_success();
    assert!(
        !proxy.calls().is_empty(),
        "the second up made no call at all through --endpoint-url"
    );
    let mutating: Vec<String> = proxy
        .mutating_calls()
        .iter()
        .map(|c| format!("{}:{}", c.service, c.operation))
        .collect();
    assert!(
        mutating.is_empty(),
        "second up must create nothing, but made {mutating:?}\nall calls: {:?}",
        proxy.call_names()
    );

    let after = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(before, after, "ids or creation times changed");
    assert_eq!(role_before, t.aws.role(INSTANCE_ROLE).await);
    assert_eq!(profile_before, t.aws.instance_profile(INSTANCE_ROLE).await);

    // Each step alone is idempotent too.
    for step in steps() {
        proxy.clear();
        t.cli_via(&proxy)
            .args(step.clone())
            .run()
            .await
            .assert_success();
        let mutating: Vec<String> = proxy
            .mutating_calls()
            .iter()
            .map(|c| c.operation.clone())
            .collect();
        assert!(
            mutating.is_empty(),
            "re-running step {step:?} made mutating calls {mutating:?}"
        );
    }
    assert_eq!(before, t.aws.snapshot(DEFAULT_STACK).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_one_by_one_build_the_same_stack_as_up() {
    let t = TestEnv::new().await;
    for step in steps() {
        t.cli().args(step).run().await.assert_success();
    }
    assert_stack_settings(&t.aws, DEFAULT_STACK, &[ALLOW_CIDR], Launch::Configuration).await;
    let before = t.aws.snapshot(DEFAULT_STACK).await;

    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(up_no_wait())
        .run()
        .await
        .assert_success();
    assert!(
        proxy.mutating_calls().is_empty(),
        "up after all steps must create nothing: {:?}",
        proxy.call_names()
    );
    assert_eq!(before, t.aws.snapshot(DEFAULT_STACK).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_leaves_nothing_behind() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(up_no_wait())
        .run()
        .await
        .assert_success();
    // Anything of the stack created outside the resources the snapshot knows (the awslogs log
    // group) must go too: compare create and delete calls.
    let created_log_groups = proxy.count("CreateLogGroup");
    proxy.clear();
    t.aws
        .snapshot(DEFAULT_STACK)
        .await
        .assert_complete(DEFAULT_STACK);
    let state = t.state_path(DEFAULT_STACK);
    assert!(state.is_file());

    // A container instance joined (as on AWS), and a later revision of one family exists:
    // down must still clean up, and deregister every revision of the stack's families.
    let joined = t.aws.register_container_instances(DEFAULT_STACK).await;
    assert_eq!(joined.len(), 2);
    let family = format!("{DEFAULT_STACK}-linkerd");
    t.aws
        .ecs
        .register_task_definition()
        .family(&family)
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("linkerd")
                .image("buoyantio/linkerd:1.7.5")
                .memory(1024)
                .build(),
        )
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key(STACK_TAG)
                .value(DEFAULT_STACK)
                .build(),
        )
        .send()
        .await
        .expect("register a second revision");
    assert_eq!(t.aws.active_task_definitions(&family).await.len(), 2);

    t.cli_via(&proxy)
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    if created_log_groups > 0 {
        assert!(
            proxy.count("DeleteLogGroup") >= 1,
            "up created a log group, down never deleted it: {:?}",
            proxy.call_names()
        );
    }

    let after = t.aws.snapshot(DEFAULT_STACK).await;
    assert!(
        after.leftovers().is_empty(),
        "down left {:?}",
        after.leftovers()
    );
    let cluster = t.aws.cluster(DEFAULT_STACK).await;
    assert!(
        cluster
            .as_ref()
            .is_none_or(|c| c.status() == Some("INACTIVE")),
        "cluster must be INACTIVE or gone: {cluster:?}"
    );
    for suffix in FAMILIES {
        let family = format!("{DEFAULT_STACK}-{suffix}");
        assert!(
            t.aws.active_task_definitions(&family).await.is_empty(),
            "ACTIVE revisions left in {family}"
        );
    }
    // The tool created ecsInstanceRole and its profile, and no other policy is on it.
    assert!(t.aws.role(INSTANCE_ROLE).await.is_none(), "role left");
    assert!(
        t.aws.instance_profile(INSTANCE_ROLE).await.is_none(),
        "instance profile left"
    );
    assert!(
        !state.exists(),
        "state file must be removed by a successful down"
    );

    // Order AWS needs: services before the cluster, the ASG and instances before the security
    // group, the ASG before its launch configuration.
    let calls = proxy.call_names();
    let first = |op: &str| {
        proxy
            .first_index(op)
            .unwrap_or_else(|| panic!("down never called {op}: {calls:?}"))
    };
    let last = |op: &str| {
        proxy
            .last_index(op)
            .unwrap_or_else(|| panic!("down never called {op}: {calls:?}"))
    };
    assert!(last("DeleteService") < first("DeleteCluster"), "{calls:?}");
    assert!(
        last("DeleteAutoScalingGroup") < first("DeleteSecurityGroup"),
        "{calls:?}"
    );
    assert!(
        last("TerminateInstances") < first("DeleteSecurityGroup"),
        "{calls:?}"
    );
    assert!(
        last("DeleteAutoScalingGroup") < first("DeleteLaunchConfiguration"),
        "{calls:?}"
    );
    assert!(last("DeleteRolePolicy") < first("DeleteRole"), "{calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_goes_on_after_a_failed_deletion_and_keeps_the_state() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();
    let sg_id = t
        .aws
        .security_group(&format!("{DEFAULT_STACK}-sg"))
        .await
        .and_then(|g| g.group_id().map(str::to_string))
        .expect("security group");

    let proxy = t.proxy().await;
    proxy.fail(
        "DeleteSecurityGroup",
        FaultResponse::ec2(
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ),
    );
    // --timeout bounds the run even if the tool retried this error.
    let out = t
        .cli_via(&proxy)
        .args(["down", "--yes", "--timeout", "20s"])
        .run()
        .await;
    out.assert_code(1);
    let left = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(
        left.leftovers(),
        vec![format!("security group {sg_id}")],
        "only the security group may be left\n{out}"
    );
    let text = out.all_lower();
    assert!(
        text.contains(&sg_id) || text.contains(&format!("{DEFAULT_STACK}-sg")),
        "down must list what is left\n{out}"
    );
    assert!(
        t.state_path(DEFAULT_STACK).is_file(),
        "the state file stays while something is left"
    );

    proxy.clear_faults();
    t.cli_via(&proxy)
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    assert!(t.aws.snapshot(DEFAULT_STACK).await.leftovers().is_empty());
    assert!(!t.state_path(DEFAULT_STACK).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_exactly_one_document() {
    let t = TestEnv::new().await;
    // Global flags before the subcommand.
    let out = t
        .cli()
        .args([
            "--output",
            "json",
            "up",
            "--allow-cidr",
            ALLOW_CIDR,
            "--no-wait",
        ])
        .run()
        .await;
    out.assert_success();
    assert!(out.json().is_object(), "up --output json: an object\n{out}");
    t.aws
        .snapshot(DEFAULT_STACK)
        .await
        .assert_complete(DEFAULT_STACK);

    // ... and after it.
    let out = t
        .cli()
        .args(["down", "--yes", "--output", "json"])
        .run()
        .await;
    out.assert_success();
    assert!(
        out.json().is_object(),
        "down --output json: an object\n{out}"
    );
    assert!(t.aws.snapshot(DEFAULT_STACK).await.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_show_prints_the_state_file_and_changes_nothing() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();
    let path = t.state_path(DEFAULT_STACK);
    let before = std::fs::read_to_string(&path).unwrap();
    let out = t
        .cli()
        .args(["state", "show", "--output", "json"])
        .run()
        .await;
    out.assert_success();
    let shown = &out.json()["state"];
    let file: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(shown, &file, "state show prints the file as it is");
    let sg = t.aws.snapshot(DEFAULT_STACK).await.security_group.unwrap();
    assert!(before.contains(&sg), "the state records the group AWS has");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    let elsewhere = tempfile::tempdir().unwrap();
    let none = Cli::new(elsewhere.path(), t.moto.url())
        .args(["state", "show"])
        .run()
        .await;
    assert_eq!(none.code, Some(1), "{none}");
    assert!(none.stderr.contains("no state file"), "{none}");
}
