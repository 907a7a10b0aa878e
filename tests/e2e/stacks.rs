//! Stacks side by side in one account and region, and the shared IAM role.

use crate::support::checks::{assert_role_created_by_tool, assert_stack_settings, Launch};
use crate::support::*;

const CIDR_B1: &str = "198.51.100.0/24";
const CIDR_B2: &str = "192.0.2.8/29";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stacks_stay_apart_and_share_the_role_safely() {
    let t = TestEnv::new().await;
    let state_a = t.work_dir().join("state-a.json");
    let state_a_str = state_a.to_string_lossy().into_owned();

    // Stack a: names from --stack, state from --state (flags after the subcommand).
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .args(["--stack", "a", "--state", &state_a_str])
        .run()
        .await
        .assert_success();
    assert_state_file(&state_a, "a", REGION);
    assert!(
        !t.state_path("a").exists(),
        "--state must replace the default state path"
    );
    assert_role_created_by_tool(&t.aws).await;
    let role_by_a = t.aws.role(INSTANCE_ROLE).await.expect("role");
    let profile_by_a = t
        .aws
        .instance_profile(INSTANCE_ROLE)
        .await
        .expect("profile");

    // Stack b: name from L5D_ECS_STACK, default state path, two CIDRs.
    t.cli()
        .env("L5D_ECS_STACK", "b")
        .args([
            "up",
            "--allow-cidr",
            CIDR_B1,
            "--allow-cidr",
            CIDR_B2,
            "--no-wait",
        ])
        .run()
        .await
        .assert_success();
    assert_state_file(&t.state_path("b"), "b", REGION);

    assert_stack_settings(&t.aws, "a", &[ALLOW_CIDR], Launch::Configuration).await;
    assert_stack_settings(&t.aws, "b", &[CIDR_B1, CIDR_B2], Launch::Configuration).await;
    let a = t.aws.snapshot("a").await;
    let b = t.aws.snapshot("b").await;
    a.assert_complete("a");
    b.assert_complete("b");
    assert_ne!(a.security_group, b.security_group);
    assert_ne!(a.cluster, b.cluster);
    assert_ne!(a.asg, b.asg);
    // b found the role a created and reused it.
    let role = t.aws.role(INSTANCE_ROLE).await.expect("role");
    assert_eq!(
        role.role_id, role_by_a.role_id,
        "b must reuse the role, not recreate it"
    );
    let mut policies = role.inline_policies.clone();
    policies.sort();
    assert_eq!(
        policies,
        vec!["a-policy".to_string(), "b-policy".to_string()]
    );
    assert_eq!(
        t.aws
            .instance_profile(INSTANCE_ROLE)
            .await
            .expect("profile")
            .id,
        profile_by_a.id
    );

    // Take down a, the stack that created the role: b keeps everything, role and profile too.
    t.cli()
        .args(["--stack", "a", "--state", &state_a_str, "down", "--yes"])
        .run()
        .await
        .assert_success();
    let a_after = t.aws.snapshot("a").await;
    assert!(
        a_after.leftovers().is_empty(),
        "a left {:?}",
        a_after.leftovers()
    );
    assert!(!state_a.exists(), "a's state file removed");
    assert_eq!(b, t.aws.snapshot("b").await, "taking down a touched b");
    assert!(t.state_path("b").is_file(), "b's state file untouched");
    let role = t.aws.role(INSTANCE_ROLE).await.expect("role kept for b");
    assert_eq!(role.role_id, role_by_a.role_id);
    assert_eq!(role.inline_policies, vec!["b-policy".to_string()]);
    assert!(role
        .attached_policies
        .iter()
        .any(|p| p == ECS_MANAGED_POLICY_ARN));
    let profile = t
        .aws
        .instance_profile(INSTANCE_ROLE)
        .await
        .expect("profile kept for b");
    assert_eq!(profile.id, profile_by_a.id);
    assert_eq!(profile.roles, vec![INSTANCE_ROLE.to_string()]);
    assert_stack_settings(&t.aws, "b", &[CIDR_B1, CIDR_B2], Launch::Configuration).await;

    // Take down b: nothing of b is left, and the role l5d-ecs created goes with the last policy.
    t.cli()
        .env("L5D_ECS_STACK", "b")
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    let b_after = t.aws.snapshot("b").await;
    assert!(
        b_after.leftovers().is_empty(),
        "b left {:?}",
        b_after.leftovers()
    );
    assert!(!t.state_path("b").exists());
    assert!(
        t.aws.role(INSTANCE_ROLE).await.is_none(),
        "role left behind"
    );
    assert!(
        t.aws.instance_profile(INSTANCE_ROLE).await.is_none(),
        "instance profile left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_the_tool_did_not_create_is_never_deleted() {
    let t = TestEnv::new().await;
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
    .to_string();
    t.aws
        .iam
        .create_role()
        .role_name(INSTANCE_ROLE)
        .assume_role_policy_document(trust)
        .send()
        .await
        .expect("create_role");
    t.aws
        .iam
        .attach_role_policy()
        .role_name(INSTANCE_ROLE)
        .policy_arn(ECS_MANAGED_POLICY_ARN)
        .send()
        .await
        .expect("attach_role_policy");
    t.aws
        .iam
        .create_instance_profile()
        .instance_profile_name(INSTANCE_ROLE)
        .send()
        .await
        .expect("create_instance_profile");
    t.aws
        .iam
        .add_role_to_instance_profile()
        .instance_profile_name(INSTANCE_ROLE)
        .role_name(INSTANCE_ROLE)
        .send()
        .await
        .expect("add_role_to_instance_profile");
    let role_before = t.aws.role(INSTANCE_ROLE).await.expect("role");
    let profile_before = t
        .aws
        .instance_profile(INSTANCE_ROLE)
        .await
        .expect("profile");

    let proxy = t.proxy().await;
    t.cli_via(&proxy)
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await
        .assert_success();
    for op in [
        "CreateRole",
        "CreateInstanceProfile",
        "DeleteRole",
        "DeleteInstanceProfile",
    ] {
        assert_eq!(
            proxy.count(op),
            0,
            "up must not call {op} when the role and profile exist: {:?}",
            proxy.call_names()
        );
    }
    assert_stack_settings(&t.aws, DEFAULT_STACK, &[ALLOW_CIDR], Launch::Configuration).await;
    let role = t.aws.role(INSTANCE_ROLE).await.expect("role");
    assert_eq!(role.role_id, role_before.role_id);
    assert_eq!(
        role.inline_policies,
        vec![format!("{DEFAULT_STACK}-policy")]
    );

    proxy.clear();
    t.cli_via(&proxy)
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    assert!(t.aws.snapshot(DEFAULT_STACK).await.leftovers().is_empty());
    for op in [
        "DeleteRole",
        "DeleteInstanceProfile",
        "DetachRolePolicy",
        "RemoveRoleFromInstanceProfile",
    ] {
        assert_eq!(
            proxy.count(op),
            0,
            "down must not call {op} on a role it did not create: {:?}",
            proxy.call_names()
        );
    }
    let role = t.aws.role(INSTANCE_ROLE).await.expect("role kept");
    assert_eq!(role.role_id, role_before.role_id);
    assert!(
        role.inline_policies.is_empty(),
        "own policy removed: {role:?}"
    );
    assert_eq!(role.attached_policies, role_before.attached_policies);
    let profile = t
        .aws
        .instance_profile(INSTANCE_ROLE)
        .await
        .expect("profile kept");
    assert_eq!(profile.id, profile_before.id);
    assert_eq!(profile.roles, vec![INSTANCE_ROLE.to_string()]);
}
