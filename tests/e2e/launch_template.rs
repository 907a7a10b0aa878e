//! Launch templates: forced with `--launch-template`, and the fallback where the account
//! refuses launch configurations (`UnsupportedOperation`, injected through the proxy since
//! moto always accepts them).

use crate::support::checks::{assert_stack_settings, Launch};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_template_flag_uses_a_template_end_to_end() {
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
    assert_eq!(
        proxy.count("CreateLaunchConfiguration"),
        0,
        "--launch-template must not try a launch configuration"
    );
    assert_stack_settings(&t.aws, DEFAULT_STACK, &[ALLOW_CIDR], Launch::Template).await;
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    before.assert_complete(DEFAULT_STACK);

    proxy.clear();
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
    assert!(
        proxy.mutating_calls().is_empty(),
        "second up: {:?}",
        proxy.call_names()
    );
    assert_eq!(before, t.aws.snapshot(DEFAULT_STACK).await);

    t.cli_via(&proxy)
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    let after = t.aws.snapshot(DEFAULT_STACK).await;
    assert!(
        after.leftovers().is_empty(),
        "down left {:?}",
        after.leftovers()
    );
    assert!(t
        .aws
        .launch_template(&format!("{DEFAULT_STACK}-lt"))
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_launch_configuration_falls_back_to_a_template() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    proxy.fail(
        "CreateLaunchConfiguration",
        FaultResponse::query(
            400,
            "UnsupportedOperation",
            "The Launch Configuration creation operation is not available in your account. \
             Use launch templates to create configuration templates for your Auto Scaling groups.",
        ),
    );
    let out = t
        .cli_via(&proxy)
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await;
    out.assert_success();
    assert!(
        proxy.count("CreateLaunchConfiguration") >= 1,
        "the launch configuration was tried first: {:?}",
        proxy.call_names()
    );
    assert!(
        out.all_lower().contains("launch template"),
        "up must say it used a launch template\n{out}"
    );
    assert_stack_settings(&t.aws, DEFAULT_STACK, &[ALLOW_CIDR], Launch::Template).await;

    // The state remembers the template: a second up (the account still refuses launch
    // configurations) changes nothing.
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    proxy.clear();
    t.cli_via(&proxy)
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await
        .assert_success();
    assert!(
        proxy.mutating_calls().is_empty(),
        "second up: {:?}",
        proxy.call_names()
    );
    assert_eq!(before, t.aws.snapshot(DEFAULT_STACK).await);

    t.cli_via(&proxy)
        .args(["down", "--yes"])
        .run()
        .await
        .assert_success();
    assert!(t.aws.snapshot(DEFAULT_STACK).await.leftovers().is_empty());
}
