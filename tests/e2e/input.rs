//! Refusals: bad input (exit 2, no AWS call), `down` without `--yes` off a terminal, steps
//! whose dependency is missing, a state file of another account or region, the checkip lookup.

use crate::support::checks::ingress_rules;
use crate::support::*;

/// (what, args, extra environment)
type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_aws_call() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    let long_name = "a".repeat(33);
    let cases: Vec<Case> = vec![
        (
            "stack name with upper case and underscore",
            vec![
                "--stack",
                "Bad_Name",
                "up",
                "--allow-cidr",
                ALLOW_CIDR,
                "--no-wait",
            ],
            vec![],
        ),
        (
            "stack name after the subcommand",
            vec![
                "up",
                "--allow-cidr",
                ALLOW_CIDR,
                "--no-wait",
                "--stack",
                "Bad_Name",
            ],
            vec![],
        ),
        (
            "stack name from L5D_ECS_STACK",
            vec!["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"],
            vec![("L5D_ECS_STACK", "Bad_Name")],
        ),
        (
            "stack name of 33 characters",
            vec![
                "--stack",
                long_name.as_str(),
                "up",
                "--allow-cidr",
                ALLOW_CIDR,
                "--no-wait",
            ],
            vec![],
        ),
        (
            "stack name starting with a digit",
            vec![
                "--stack",
                "1demo",
                "up",
                "--allow-cidr",
                ALLOW_CIDR,
                "--no-wait",
            ],
            vec![],
        ),
        (
            "malformed CIDR",
            vec!["up", "--allow-cidr", "not-a-cidr", "--no-wait"],
            vec![],
        ),
        (
            "CIDR with an octet out of range",
            vec!["up", "--allow-cidr", "203.0.113.300/32", "--no-wait"],
            vec![],
        ),
        (
            "CIDR with a prefix out of range",
            vec!["up", "--allow-cidr", "203.0.113.7/33", "--no-wait"],
            vec![],
        ),
        (
            "CIDR with host bits set",
            vec!["up", "--allow-cidr", "10.0.0.1/8", "--no-wait"],
            vec![],
        ),
        (
            "CIDR with host bits set, security-group step",
            vec!["security-group", "--allow-cidr", "10.0.0.1/8"],
            vec![],
        ),
        (
            "duration without a unit",
            vec!["up", "--allow-cidr", ALLOW_CIDR, "--wait-timeout", "10"],
            vec![],
        ),
        (
            "duration with an unknown unit",
            vec!["up", "--allow-cidr", ALLOW_CIDR, "--wait-timeout", "10x"],
            vec![],
        ),
        (
            "down timeout without a unit",
            vec!["down", "--yes", "--timeout", "10"],
            vec![],
        ),
        (
            "min above desired",
            vec![
                "up",
                "--allow-cidr",
                ALLOW_CIDR,
                "--no-wait",
                "--min",
                "3",
                "--desired",
                "2",
            ],
            vec![],
        ),
        (
            "desired above max",
            vec!["up", "--allow-cidr", ALLOW_CIDR, "--no-wait", "--max", "1"],
            vec![],
        ),
        (
            "unknown output format",
            vec![
                "--output",
                "yaml",
                "up",
                "--allow-cidr",
                ALLOW_CIDR,
                "--no-wait",
            ],
            vec![],
        ),
        ("unknown subcommand", vec!["sideways"], vec![]),
    ];

    for (what, args, env) in cases {
        proxy.clear();
        let mut cli = t.cli_via(&proxy).args(args.iter().copied());
        for (k, v) in &env {
            cli = cli.env(k, *v);
        }
        let out = cli.run().await;
        assert_eq!(out.code, Some(2), "{what}: expected exit code 2\n{out}");
        assert!(
            proxy.calls().is_empty(),
            "{what}: refused input must make no AWS call, made {:?}\n{out}",
            proxy.call_names()
        );
        assert!(
            !t.work_dir().join(".l5d-ecs").exists(),
            "{what}: no state written\n{out}"
        );
    }
    assert!(t.aws.snapshot(DEFAULT_STACK).await.leftovers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_without_yes_off_a_terminal_refuses_and_deletes_nothing() {
    let t = TestEnv::new().await;
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await
        .assert_success();
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    before.assert_complete(DEFAULT_STACK);
    let role_before = t.aws.role(INSTANCE_ROLE).await;

    let proxy = t.proxy().await;
    // stdin is /dev/null: not a terminal.
    let out = t.cli_via(&proxy).arg("down").run().await;
    out.assert_code(2);
    assert!(
        out.all_lower().contains("--yes"),
        "must say to add --yes\n{out}"
    );
    assert!(
        proxy.mutating_calls().is_empty(),
        "down without --yes changed something: {:?}",
        proxy.call_names()
    );
    assert_eq!(before, t.aws.snapshot(DEFAULT_STACK).await);
    assert_eq!(role_before, t.aws.role(INSTANCE_ROLE).await);
    assert!(t.state_path(DEFAULT_STACK).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_without_its_dependency_fails_naming_it() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;

    let out = t.cli_via(&proxy).arg("consul-server").run().await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("security-group"),
        "must name the missing step security-group\n{out}"
    );
    assert!(
        proxy.mutating_calls().is_empty(),
        "{:?}",
        proxy.call_names()
    );
    assert!(t
        .aws
        .live_instances(&format!("{DEFAULT_STACK}-consul-server"))
        .await
        .is_empty());

    t.cli_via(&proxy)
        .args(["security-group", "--allow-cidr", ALLOW_CIDR])
        .run()
        .await
        .assert_success();
    proxy.clear();
    let out = t.cli_via(&proxy).arg("asg").run().await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("launch-config"),
        "must name the missing step launch-config\n{out}"
    );
    assert!(
        proxy.mutating_calls().is_empty(),
        "{:?}",
        proxy.call_names()
    );
    assert!(t
        .aws
        .auto_scaling_group(&format!("{DEFAULT_STACK}-asg"))
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_of_another_account_or_region_is_refused() {
    let t = TestEnv::new().await;
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .run()
        .await
        .assert_success();
    let path = t.state_path(DEFAULT_STACK);
    let original = std::fs::read_to_string(&path).expect("state file");
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    let proxy = t.proxy().await;

    // Another account.
    let mut state: serde_json::Value = serde_json::from_str(&original).expect("state JSON");
    state["account_id"] = serde_json::json!("999999999999");
    std::fs::write(&path, serde_json::to_string_pretty(&state).unwrap()).expect("write state");
    for args in [
        vec!["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"],
        vec!["down", "--yes"],
    ] {
        proxy.clear();
        let out = t.cli_via(&proxy).args(args.clone()).run().await;
        assert!(
            out.code.is_some_and(|c| c != 0),
            "{args:?} with a state of another account must fail\n{out}"
        );
        assert!(
            out.all_lower().contains("account"),
            "{args:?}: must say the account differs\n{out}"
        );
        assert!(
            proxy.mutating_calls().is_empty(),
            "{args:?}: {:?}",
            proxy.call_names()
        );
    }
    assert_eq!(before, t.aws.snapshot(DEFAULT_STACK).await);

    // Another region.
    std::fs::write(&path, &original).expect("restore state");
    let east = t.aws_in("us-east-1").await;
    for args in [
        vec!["cluster", "--region", "us-east-1"],
        vec!["--region", "us-east-1", "down", "--yes"],
    ] {
        proxy.clear();
        let out = t.cli_via(&proxy).args(args.clone()).run().await;
        assert!(
            out.code.is_some_and(|c| c != 0),
            "{args:?} with a state of us-west-1 must fail\n{out}"
        );
        assert!(
            out.all_lower().contains("region"),
            "{args:?}: must say the region differs\n{out}"
        );
        assert!(
            proxy.mutating_calls().is_empty(),
            "{args:?}: {:?}",
            proxy.call_names()
        );
    }
    assert!(!east.cluster_active(DEFAULT_STACK).await);
    assert_eq!(before, t.aws.snapshot(DEFAULT_STACK).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_allow_cidr_the_callers_ip_is_used_or_the_tool_asks() {
    let t = TestEnv::new().await;

    // checkip unreachable (the default test environment): stop and ask for --allow-cidr.
    let out = t.cli().args(["up", "--no-wait"]).run().await;
    assert!(
        out.code.is_some_and(|c| c != 0),
        "up without --allow-cidr and no checkip answer must fail\n{out}"
    );
    assert!(
        out.stderr.contains("--allow-cidr"),
        "must ask for --allow-cidr\n{out}"
    );
    assert!(t
        .aws
        .security_group(&format!("{DEFAULT_STACK}-sg"))
        .await
        .is_none());

    // checkip answers like checkip.amazonaws.com: the caller's IP as a /32.
    let checkip = TextServer::start("198.51.100.23\n").await;
    t.cli()
        .env("L5D_ECS_CHECKIP_URL", checkip.url())
        .arg("security-group")
        .run()
        .await
        .assert_success();
    assert!(checkip.hits() >= 1, "checkip was not asked");
    let sg = t
        .aws
        .security_group(&format!("{DEFAULT_STACK}-sg"))
        .await
        .expect("security group");
    let sources: std::collections::BTreeSet<String> = ingress_rules(&sg)
        .into_iter()
        .filter(|r| r.0 == "tcp")
        .map(|r| r.3)
        .collect();
    assert_eq!(
        sources,
        std::collections::BTreeSet::from(["198.51.100.23/32".to_string()])
    );
}
