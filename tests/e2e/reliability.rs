//! Fault injection (issue 4): the real binary talks to moto through the fault-injecting proxy
//! of `support` (`--endpoint-url` / `AWS_ENDPOINT_URL` point at it). Throttling, bare
//! 503s and lost responses at random with a fixed seed; lost responses on every create and
//! every delete; refusals moto never gives; the state file lost; two runs at once; bad input;
//! and the security settings. After every `up` the region is checked for duplicates and after
//! every `down` for orphans, through the AWS API ([`Inventory`]), and creates are counted in
//! the proxy's log (moto silently replaces a repeated ASG, launch configuration or cluster).
//!
//! With `L5D_ECS_RELIABILITY_OUT=<file>` each trial appends its figures as a JSON line
//! (`scripts/reliability-figures`); without it the tests only assert.
//! The kill -9 trials are in `reliability_kill`.

use std::time::Duration;

use crate::support::checks::{expected_rules, ingress_rules};
use crate::support::reliability::{carried_out, duplicate_creates, seed, Trial};
use crate::support::*;

const DESIRED: usize = 2;

fn up_args() -> Vec<String> {
    ["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"]
        .map(String::from)
        .to_vec()
}

fn down_args() -> Vec<String> {
    ["down", "--yes"].map(String::from).to_vec()
}

/// Checks after an `up` that should have built one complete stack: nothing missing, no
/// duplicate in the region, no create carried out twice.
async fn check_converged(t: &TestEnv, trial: &mut Trial, calls: &[Call], when: &str) {
    let inventory = t.aws.inventory().await;
    let missing = inventory.missing(DEFAULT_STACK, DESIRED);
    trial.check(missing.is_empty(), || {
        format!("{when}: the stack is incomplete, missing {missing:?}")
    });
    trial.add_duplicates(when, &inventory.duplicates(DEFAULT_STACK, DESIRED));
    trial.add_duplicates(
        &format!("{when} (creates carried out twice)"),
        &duplicate_creates(calls),
    );
}

/// Checks after a `down` that should have removed everything.
async fn check_nothing_left(t: &TestEnv, trial: &mut Trial, when: &str) {
    let orphans = t.aws.inventory().await.orphans();
    trial.add_orphans(when, &orphans);
    let state = t.state_path(DEFAULT_STACK);
    trial.check(!state.exists(), || {
        format!("{when}: the state file is still there")
    });
}

/// `down --yes` of each stack, so that the next test finds the region empty (and moto needs
/// no reset).
async fn clean_up(t: &TestEnv, stacks: &[&str]) {
    for stack in stacks {
        t.cli()
            .args(["--stack", stack, "down", "--yes"])
            .run()
            .await
            .assert_success();
    }
    let left = t.aws.inventory().await.orphans();
    assert!(left.is_empty(), "down left {left:?}");
}

fn check_ran(trial: &mut Trial, out: &Output, proxy: &Proxy) {
    trial.check(out.code == Some(0), || {
        format!(
            "{}\n{out}\n--- faults injected ---\n{}",
            failure_line(out),
            proxy.faulted_calls().join("\n")
        )
    });
}

/// One line: the command, its exit code and the error it printed (the details under the
/// `error:` line when there are any).
fn failure_line(out: &Output) -> String {
    let mut lines = out.stderr.lines().skip_while(|l| !l.starts_with("error"));
    let headline = lines.next().unwrap_or_default().trim().to_string();
    let details: Vec<&str> = lines
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    let error = if details.is_empty() {
        headline
    } else {
        details.join("; ")
    };
    format!(
        "`l5d-ecs {}` exited {}: {error}",
        out.args.join(" "),
        out.code
            .map_or("on a signal".to_string(), |c| c.to_string())
    )
}

// ---------------------------------------------------------------------------------------------
// The proxy itself
// ---------------------------------------------------------------------------------------------

/// SDK clients through `proxy` with the SDK's retry off, to see each injected answer.
async fn no_retry_clients(proxy: &Proxy) -> Aws {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(REGION))
        .endpoint_url(proxy.url())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Aws::from_config(&config)
}

/// (error code, HTTP status) of a failed call.
fn code_and_status<E, R>(
    result: Result<R, aws_sdk_ec2::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> (Option<String>, Option<u16>)
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata,
{
    match result {
        Ok(_) => (None, None),
        Err(e) => (
            aws_sdk_ec2::error::ProvideErrorMetadata::code(&e).map(str::to_string),
            e.raw_response().map(|r| r.status().as_u16()),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_throttles_in_each_protocol_answers_503_and_drops_after_forwarding() {
    let t = TestEnv::reusing().await;
    let proxy = t.proxy().await;
    let via = no_retry_clients(&proxy).await;

    proxy.set_chaos(Chaos {
        seed: seed(),
        throttle: 1.0,
        ..Chaos::default()
    });
    let seen = [
        ("ec2", code_and_status(via.ec2.describe_vpcs().send().await)),
        ("iam", code_and_status(via.iam.list_roles().send().await)),
        (
            "autoscaling",
            code_and_status(via.autoscaling.describe_auto_scaling_groups().send().await),
        ),
        (
            "sts",
            code_and_status(via.sts.get_caller_identity().send().await),
        ),
        ("ecs", code_and_status(via.ecs.list_clusters().send().await)),
        (
            "logs",
            code_and_status(via.logs.describe_log_groups().send().await),
        ),
        (
            "ssm",
            code_and_status(via.ssm.get_parameter().name(AMI_PARAMETER).send().await),
        ),
    ];
    let expected = [
        ("ec2", "RequestLimitExceeded", 503),
        ("iam", "Throttling", 400),
        ("autoscaling", "Throttling", 400),
        ("sts", "Throttling", 400),
        ("ecs", "ThrottlingException", 400),
        ("logs", "ThrottlingException", 400),
        ("ssm", "ThrottlingException", 400),
    ];
    for ((service, (code, status)), (_, want_code, want_status)) in seen.iter().zip(expected) {
        assert_eq!(
            (code.as_deref(), *status),
            (Some(want_code), Some(want_status)),
            "{service}: throttling error as the SDK parsed it"
        );
    }
    assert!(proxy
        .calls()
        .iter()
        .all(|c| c.fault == Some(Injected::Throttle) && c.upstream_status.is_none()));
    let services: Vec<String> = proxy.calls().into_iter().map(|c| c.service).collect();
    assert_eq!(
        services,
        expected
            .iter()
            .map(|(s, _, _)| s.to_string())
            .collect::<Vec<_>>()
    );

    proxy.clear();
    proxy.set_chaos(Chaos {
        seed: seed(),
        unavailable: 1.0,
        ..Chaos::default()
    });
    let (_, status) = code_and_status(via.ecs.list_clusters().send().await);
    assert_eq!(status, Some(503));
    assert_eq!(proxy.calls()[0].fault, Some(Injected::Unavailable));

    // A lost response: the client sees a transport error, moto carried the call out.
    proxy.clear();
    proxy.set_chaos(Chaos {
        seed: seed(),
        drop: 1.0,
        ..Chaos::default()
    });
    let err = via
        .ecs
        .create_cluster()
        .cluster_name("dropped")
        .send()
        .await
        .expect_err("the response is dropped");
    assert!(
        err.raw_response().is_none(),
        "a dropped response must reach the client as a transport error: {err:?}"
    );
    assert!(
        t.aws.cluster_active("dropped").await,
        "the create was carried out"
    );
    let call = proxy.calls()[0].clone();
    assert_eq!(
        (call.fault, call.status, call.upstream_status),
        (Some(Injected::Drop), 0, Some(200))
    );

    // Latency.
    proxy.clear();
    proxy.set_chaos(Chaos::latency_ms(seed(), 150, 150));
    let started = std::time::Instant::now();
    via.ecs.list_clusters().send().await.expect("list_clusters");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(proxy.calls()[0].fault, None);

    // The decisions depend on the seed and the call only, and hit the shares asked for.
    let chaos = Chaos {
        seed: seed(),
        throttle: 0.20,
        unavailable: 0.05,
        drop: 0.05,
        latency: Some((Duration::from_millis(30), Duration::from_millis(80))),
    };
    let mut counts = std::collections::BTreeMap::new();
    for nth in 0..4000u64 {
        let (fault, latency) = chaos.decide("ec2", "RunInstances", nth);
        assert_eq!((fault, latency), chaos.decide("ec2", "RunInstances", nth));
        assert!((Duration::from_millis(30)..=Duration::from_millis(80)).contains(&latency));
        *counts.entry(fault).or_insert(0usize) += 1;
    }
    let share = |f: Option<Injected>| counts.get(&f).copied().unwrap_or(0) as f64 / 4000.0;
    assert!(
        (share(Some(Injected::Throttle)) - 0.20).abs() < 0.03,
        "{counts:?}"
    );
    assert!(
        (share(Some(Injected::Unavailable)) - 0.05).abs() < 0.02,
        "{counts:?}"
    );
    assert!(
        (share(Some(Injected::Drop)) - 0.05).abs() < 0.02,
        "{counts:?}"
    );
    let other = Chaos {
        seed: seed() + 1,
        ..chaos.clone()
    };
    assert!(
        (0..200u64).any(|n| other.decide("ec2", "RunInstances", n).0
            != chaos.decide("ec2", "RunInstances", n).0),
        "another seed must give other faults"
    );

    // Leave the region empty for the next test.
    t.aws
        .ecs
        .delete_cluster()
        .cluster("dropped")
        .send()
        .await
        .expect("delete_cluster");
}

// ---------------------------------------------------------------------------------------------
// Random faults
// ---------------------------------------------------------------------------------------------

async fn chaos_trial(t: &TestEnv, name: &str, chaos: Chaos) {
    let proxy = t.proxy().await;
    proxy.set_chaos(chaos.clone());
    let mut trial = Trial::new(name, format!("seed {}", chaos.seed));
    trial.seed = Some(chaos.seed);

    let up = t.cli_via(&proxy).args(up_args()).run().await;
    check_ran(&mut trial, &up, &proxy);
    check_converged(t, &mut trial, &proxy.calls(), "after up").await;

    let down = t.cli_via(&proxy).args(down_args()).run().await;
    check_ran(&mut trial, &down, &proxy);
    check_nothing_left(t, &mut trial, "after down").await;

    trial.count_proxy(&proxy);
    let counts = proxy.fault_counts();
    for (kind, share) in [
        (Injected::Throttle, chaos.throttle),
        (Injected::Unavailable, chaos.unavailable),
        (Injected::Drop, chaos.drop),
    ] {
        trial.check(share == 0.0 || counts.contains_key(&kind), || {
            format!(
                "no {} fault was injected at all in {} calls: the proxy is not doing its job",
                kind.name(),
                proxy.calls().len()
            )
        });
    }
    eprintln!(
        "{name}: {} calls, faults {:?}",
        proxy.calls().len(),
        trial.faults
    );
    trial.finish();
}

/// The scenario: 20% throttling and 5% lost responses, fixed seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_lost_responses_make_no_duplicate_and_leave_nothing() {
    let t = TestEnv::reusing().await;
    chaos_trial(
        &t,
        "throttling 20% + lost responses 5%",
        Chaos {
            seed: seed(),
            throttle: 0.20,
            drop: 0.05,
            ..Chaos::default()
        },
    )
    .await;
}

/// Transient 5xx without an AWS error body, beside throttling and lost responses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_503s_throttling_and_lost_responses_make_no_duplicate_and_leave_nothing() {
    let t = TestEnv::reusing().await;
    chaos_trial(
        &t,
        "503 10% + throttling 10% + lost responses 5%",
        Chaos {
            seed: seed() ^ 0x5035_0350,
            throttle: 0.10,
            unavailable: 0.10,
            drop: 0.05,
            ..Chaos::default()
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Lost responses, one on every create and every delete
// ---------------------------------------------------------------------------------------------

/// Every call `up` makes that creates or changes something.
const UP_WRITES: [&str; 15] = [
    "CreateSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "RunInstances",
    "CreateCluster",
    "CreateRole",
    "AttachRolePolicy",
    "CreateInstanceProfile",
    "AddRoleToInstanceProfile",
    "PutRolePolicy",
    "RegisterTaskDefinition",
    "CreateLogGroup",
    "PutRetentionPolicy",
    "CreateLaunchConfiguration",
    "CreateAutoScalingGroup",
    "CreateService",
];

/// Every call `down` makes that deletes or changes something, but the last four IAM calls.
const DOWN_WRITES: [&str; 10] = [
    "DeleteService",
    "UpdateAutoScalingGroup",
    "DeleteAutoScalingGroup",
    "TerminateInstances",
    "DeleteLaunchConfiguration",
    "DeregisterTaskDefinition",
    "DeleteCluster",
    "DeleteRolePolicy",
    "DeleteSecurityGroup",
    "DeleteLogGroup",
];

/// The calls that remove the role l5d-ecs created, in order. Each runs only after the one
/// before succeeded, so each gets a `down` of its own.
const DOWN_IAM_WRITES: [&str; 4] = [
    "RemoveRoleFromInstanceProfile",
    "DeleteInstanceProfile",
    "DetachRolePolicy",
    "DeleteRole",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_on_every_create_is_looked_up_not_repeated() {
    let t = TestEnv::reusing().await;
    let proxy = t.proxy().await;
    for op in UP_WRITES {
        proxy.drop_times(op, 1);
    }
    let mut trial = Trial::new("lost response on every create", "once each");

    let up = t.cli_via(&proxy).args(up_args()).run().await;
    check_ran(&mut trial, &up, &proxy);
    let calls = proxy.calls();
    check_converged(&t, &mut trial, &calls, "after up").await;
    for op in UP_WRITES {
        let dropped = calls
            .iter()
            .filter(|c| c.operation == op && c.fault == Some(Injected::Drop))
            .count();
        trial.check(dropped == 1, || {
            format!("{op}: expected one lost response, the proxy dropped {dropped}")
        });
    }
    // Each create was carried out once per thing it makes, however many times it was sent.
    for (op, expected) in [
        ("CreateSecurityGroup", 1),
        ("RunInstances", 1),
        ("CreateCluster", 1),
        ("CreateRole", 1),
        ("CreateInstanceProfile", 1),
        ("RegisterTaskDefinition", FAMILIES.len()),
        ("CreateLaunchConfiguration", 1),
        ("CreateAutoScalingGroup", 1),
        ("CreateService", DAEMONS.len()),
    ] {
        let n = carried_out(&calls, op);
        trial.check(n == expected, || {
            format!("{op} carried out {n} time(s), expected {expected}")
        });
    }

    proxy.clear_faults();
    let down = t.cli_via(&proxy).args(down_args()).run().await;
    check_ran(&mut trial, &down, &proxy);
    check_nothing_left(&t, &mut trial, "after down").await;
    trial.count_proxy(&proxy);
    trial.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_on_every_delete_still_leaves_nothing() {
    let t = TestEnv::reusing().await;
    t.cli().args(up_args()).run().await.assert_success();
    let proxy = t.proxy().await;
    for op in DOWN_WRITES {
        proxy.drop_times(op, 1);
    }
    let mut trial = Trial::new("lost response on every delete", "once each");

    let down = t.cli_via(&proxy).args(down_args()).run().await;
    check_ran(&mut trial, &down, &proxy);
    let calls = proxy.calls();
    for op in DOWN_WRITES {
        let dropped = calls
            .iter()
            .filter(|c| c.operation == op && c.fault == Some(Injected::Drop))
            .count();
        trial.check(dropped == 1, || {
            format!("{op}: expected one lost response, the proxy dropped {dropped}")
        });
    }
    check_nothing_left(&t, &mut trial, "after down").await;
    trial.count_proxy(&proxy);
    trial.finish();
}

/// The SDK retries a call whose response was lost; AWS then answers `NoSuchEntity` for what
/// the first call removed. `down` must take that as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_response_on_each_call_removing_the_role_still_leaves_nothing() {
    let t = TestEnv::reusing().await;
    let mut trial = Trial::new(
        "lost response removing the role",
        "once each, one down each",
    );
    for (i, op) in DOWN_IAM_WRITES.into_iter().enumerate() {
        if i > 0 {
            t.reset_unless_empty().await;
            let _ = std::fs::remove_dir_all(t.work_dir().join(".l5d-ecs"));
        }
        t.cli().args(up_args()).run().await.assert_success();
        let proxy = t.proxy().await;
        proxy.drop_times(op, 1);
        // (moto answers a repeated RemoveRoleFromInstanceProfile with an HTML 500; the proxy
        // turns that into AWS's NoSuchEntity.)
        let down = t.cli_via(&proxy).args(down_args()).run().await;
        trial.check(down.code == Some(0), || {
            format!("lost response on {op}: {}", failure_line(&down))
        });
        let dropped = proxy
            .calls()
            .iter()
            .filter(|c| c.operation == op && c.fault == Some(Injected::Drop))
            .count();
        trial.check(dropped == 1, || {
            format!("{op}: expected one lost response, the proxy dropped {dropped}")
        });
        check_nothing_left(
            &t,
            &mut trial,
            &format!("lost response on {op}: after down"),
        )
        .await;
        trial.count_proxy(&proxy);
    }
    trial.finish();
}

// ---------------------------------------------------------------------------------------------
// Refusals moto never gives
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_retries_refusals_until_they_clear() {
    let t = TestEnv::reusing().await;
    t.cli().args(up_args()).run().await.assert_success();
    let proxy = t.proxy().await;
    let refusals = [
        (
            "DeleteSecurityGroup",
            3,
            FaultResponse::dependency_violation(&format!("{DEFAULT_STACK}-sg")),
        ),
        (
            "DeleteLaunchConfiguration",
            2,
            FaultResponse::resource_in_use("launch configuration"),
        ),
        (
            "DeleteAutoScalingGroup",
            2,
            FaultResponse::resource_in_use("auto scaling group"),
        ),
        ("DeleteCluster", 2, FaultResponse::cluster_contains("Tasks")),
    ];
    for (op, n, response) in &refusals {
        proxy.fail_times(op, *n, response.clone());
    }
    let mut trial = Trial::new("refusals that clear", "DependencyViolation x3 and others");

    let down = t.cli_via(&proxy).args(down_args()).run().await;
    check_ran(&mut trial, &down, &proxy);
    for (op, n, _) in &refusals {
        let refused = proxy
            .calls()
            .iter()
            .filter(|c| c.operation == *op && c.fault == Some(Injected::Scripted))
            .count();
        let done = carried_out(&proxy.calls(), op);
        trial.check(refused == *n && done == 1, || {
            format!("{op}: refused {refused} time(s) (expected {n}), then carried out {done} time(s) (expected 1)")
        });
    }
    check_nothing_left(&t, &mut trial, "after down").await;
    trial.count_proxy(&proxy);
    trial.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_that_never_clears_fails_down_within_its_timeout_and_keeps_the_state() {
    let t = TestEnv::reusing().await;
    t.cli().args(up_args()).run().await.assert_success();
    let proxy = t.proxy().await;
    proxy.fail(
        "DeleteSecurityGroup",
        FaultResponse::dependency_violation(&format!("{DEFAULT_STACK}-sg")),
    );
    let mut trial = Trial::new("refusal that never clears", "DependencyViolation always");

    let started = std::time::Instant::now();
    let down = t
        .cli_via(&proxy)
        .args(["down", "--yes", "--timeout", "3s"])
        .run()
        .await;
    let took = started.elapsed();
    trial.check(down.code == Some(1), || {
        format!("down must fail (exit 1) when the group stays in use:\n{down}")
    });
    trial.check(took < Duration::from_secs(30), || {
        format!("down --timeout 3s took {took:?}")
    });
    let text = down.all_lower();
    trial.check(
        text.contains(&format!("{DEFAULT_STACK}-sg")) && text.contains("dependencyviolation"),
        || format!("the error must name the group and what AWS answered:\n{down}"),
    );
    let state = t.state_path(DEFAULT_STACK);
    let kept = state.is_file()
        && read_state(&state)["resources"]["security_group"]
            .get("id")
            .is_some();
    trial.check(kept, || {
        "the state file must still record the security group".to_string()
    });
    let left = t.aws.inventory().await.orphans();
    trial.check(
        left.len() == 1 && left[0].starts_with("security group"),
        || format!("only the security group may be left, found {left:?}"),
    );

    // Once AWS lets go, the next down finishes the job.
    proxy.clear_faults();
    let again = t.cli_via(&proxy).args(down_args()).run().await;
    check_ran(&mut trial, &again, &proxy);
    check_nothing_left(&t, &mut trial, "after the second down").await;
    trial.count_proxy(&proxy);
    trial.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_launch_configurations_fall_back_to_a_template_with_imdsv2() {
    let t = TestEnv::reusing().await;
    let proxy = t.proxy().await;
    proxy.fail(
        "CreateLaunchConfiguration",
        FaultResponse::launch_configurations_unsupported(),
    );
    let mut trial = Trial::new("launch configurations unsupported", "UnsupportedOperation");

    let up = t.cli_via(&proxy).args(up_args()).run().await;
    check_ran(&mut trial, &up, &proxy);
    trial.check(up.all_lower().contains("launch template"), || {
        format!("up must say it uses a launch template:\n{up}")
    });
    check_converged(&t, &mut trial, &proxy.calls(), "after up").await;
    let inventory = t.aws.inventory().await;
    trial.check(
        inventory.launch_configurations.is_empty()
            && inventory.launch_templates == vec![format!("{DEFAULT_STACK}-lt")],
        || {
            format!(
                "expected only launch template {DEFAULT_STACK}-lt, found configurations {:?} and templates {:?}",
                inventory.launch_configurations, inventory.launch_templates
            )
        },
    );
    let template = t.aws.launch_template(&format!("{DEFAULT_STACK}-lt")).await;
    let template_id = template
        .as_ref()
        .and_then(|lt| lt.launch_template_id())
        .unwrap_or_default()
        .to_string();
    if template.is_some() {
        let data = t.aws.launch_template_data(&template_id).await;
        let tokens = data
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|v| v.as_str().to_string());
        trial.check(tokens.as_deref() == Some("required"), || {
            format!("the launch template must require IMDSv2 tokens, has {tokens:?}")
        });
    }
    let group = t
        .aws
        .auto_scaling_group(&format!("{DEFAULT_STACK}-asg"))
        .await;
    let spec = group.as_ref().and_then(|g| g.launch_template());
    let uses_template = spec.is_some_and(|lt| {
        lt.launch_template_name() == Some(format!("{DEFAULT_STACK}-lt").as_str())
            || (!template_id.is_empty() && lt.launch_template_id() == Some(template_id.as_str()))
    });
    trial.check(uses_template, || {
        format!("the auto scaling group must use the template: {group:?}")
    });

    let down = t.cli_via(&proxy).args(down_args()).run().await;
    check_ran(&mut trial, &down, &proxy);
    check_nothing_left(&t, &mut trial, "after down").await;
    trial.count_proxy(&proxy);
    trial.finish();
}

// ---------------------------------------------------------------------------------------------
// The state file lost; two runs at once
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_state_file_down_discover_finds_and_removes_everything() {
    let t = TestEnv::reusing().await;
    t.cli().args(up_args()).run().await.assert_success();
    let state = t.state_path(DEFAULT_STACK);
    assert!(state.is_file());
    std::fs::remove_file(&state).expect("delete the state file");
    let backup = state.with_extension("json.backup");
    let _ = std::fs::remove_file(&backup);
    let proxy = t.proxy().await;
    let mut trial = Trial::new("state file lost", "down --discover");

    // status --discover lists the stack's resources, and changes nothing.
    let status = t
        .cli_via(&proxy)
        .args(["status", "--discover", "--output", "json"])
        .run()
        .await;
    check_ran(&mut trial, &status, &proxy);
    if status.code == Some(0) {
        let doc = status.json();
        let rows = doc["resources"].as_array().cloned().unwrap_or_default();
        let count = |kind: &str| {
            rows.iter()
                .filter(|r| r["kind"] == kind && r["action"] == "found")
                .count()
        };
        for (kind, n) in [
            ("security-group", 1),
            ("consul-server", 1),
            ("cluster", 1),
            ("role-policy", 1),
            ("task-definition", FAMILIES.len()),
            ("launch-configuration", 1),
            ("auto-scaling-group", 1),
            ("daemon-service", DAEMONS.len()),
        ] {
            trial.check(count(kind) == n, || {
                format!(
                    "status --discover: expected {n} {kind} row(s) found, got {}: {doc:#}",
                    count(kind)
                )
            });
        }
    }
    // list --discover shows the stack although no state file knows it.
    let list = t
        .cli_via(&proxy)
        .args(["list", "--discover", "--output", "json"])
        .run()
        .await;
    check_ran(&mut trial, &list, &proxy);
    if list.code == Some(0) {
        let doc = list.json();
        let found = doc["resources"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                r["kind"] == "stack" && r["name"] == DEFAULT_STACK && r["action"] == "found"
            })
        });
        trial.check(found, || {
            format!("list --discover must show stack {DEFAULT_STACK} as found: {doc:#}")
        });
    }
    let mutating = proxy.mutating_calls();
    trial.check(mutating.is_empty(), || {
        format!("status --discover and list --discover changed things: {mutating:?}")
    });

    let down = t
        .cli_via(&proxy)
        .args(["down", "--discover", "--yes"])
        .run()
        .await;
    check_ran(&mut trial, &down, &proxy);
    check_nothing_left(&t, &mut trial, "after down --discover").await;
    trial.count_proxy(&proxy);
    trial.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ups_at_once_one_refuses_naming_the_holder() {
    let t = TestEnv::reusing().await;
    // One proxy each, so that the refused run's calls can be counted; latency so that the
    // run holding the lock is still at work when the other starts.
    let proxies = [t.proxy().await, t.proxy().await];
    for p in &proxies {
        p.set_chaos(Chaos::latency_ms(seed(), 100, 150));
    }
    let mut trial = Trial::new("two ups at once", "same stack and state file");

    // The second starts once the first is at work (it takes the lock before its first call),
    // so that a loaded machine cannot let the first finish before the second begins.
    let first = t.cli_via(&proxies[0]).args(up_args()).spawn();
    proxies[0].wait_for_requests(1, CLI_TIMEOUT).await;
    let second = t.cli_via(&proxies[1]).args(up_args()).spawn();
    let pids = [first.pid(), second.pid()];
    let (a, b) = tokio::join!(first.finish(CLI_TIMEOUT), second.finish(CLI_TIMEOUT));
    let outs = [a, b];
    let winners: Vec<usize> = (0..2).filter(|&i| outs[i].code == Some(0)).collect();
    trial.check(winners.len() == 1, || {
        format!("exactly one up must succeed:\n{}\n{}", outs[0], outs[1])
    });
    if let [w] = winners[..] {
        let l = 1 - w;
        let loser = &outs[l];
        let holder = pids[w].map(|p| format!("pid={p}")).unwrap_or_default();
        trial.check(loser.code.is_some_and(|c| c != 0), || {
            format!("the other up must fail:\n{loser}")
        });
        trial.check(!holder.is_empty() && loser.stderr.contains(&holder), || {
            format!("the refusal must name the holder ({holder}):\n{loser}")
        });
        let calls = proxies[l].call_names();
        trial.check(calls.is_empty(), || {
            format!("the refused up must make no AWS call, made {calls:?}")
        });
    }
    let calls: Vec<Call> = proxies.iter().flat_map(|p| p.calls()).collect();
    check_converged(&t, &mut trial, &calls, "after the ups").await;
    let lock = t.state_path(DEFAULT_STACK).with_extension("json.lock");
    trial.check(!lock.exists(), || {
        format!("the lock {} outlived its holder", lock.display())
    });

    // A lock left by a dead process is taken over.
    let mut dead = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("wait for true");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    std::fs::write(&lock, format!("pid={dead_pid} host={hostname}\n")).expect("write lock");
    let down = t.cli_via(&proxies[0]).args(down_args()).run().await;
    check_ran(&mut trial, &down, &proxies[0]);
    check_nothing_left(&t, &mut trial, "after down").await;
    trial.check(!lock.exists(), || {
        format!("the stale lock {} is still there", lock.display())
    });
    for p in &proxies {
        trial.count_proxy(p);
    }
    trial.finish();
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_no_aws_call() {
    let t = TestEnv::reusing().await;
    let proxy = t.proxy().await;
    let up = |extra: &[&str]| -> Vec<String> {
        let mut args = up_args();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // (what, args, a value the message must name)
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "malformed CIDR",
            up(&["--allow-cidr", "203.0.113"]),
            "203.0.113",
        ),
        (
            "CIDR without a prefix",
            up(&["--allow-cidr", "203.0.113.7"]),
            "203.0.113.7",
        ),
        (
            "CIDR octet out of range",
            up(&["--allow-cidr", "203.0.113.256/32"]),
            "203.0.113.256/32",
        ),
        (
            "CIDR prefix out of range",
            up(&["--allow-cidr", "203.0.113.7/33"]),
            "203.0.113.7/33",
        ),
        (
            "CIDR with host bits set",
            up(&["--allow-cidr", "10.1.2.3/8"]),
            "10.1.2.3/8",
        ),
        (
            "IPv6 CIDR with host bits set",
            up(&["--allow-cidr", "2001:db8::1/32"]),
            "2001:db8::1/32",
        ),
        (
            "min above desired",
            up(&["--min", "3", "--desired", "2"]),
            "--min 3",
        ),
        (
            "desired above max",
            up(&["--desired", "4", "--max", "3"]),
            "--max 3",
        ),
        (
            "max zero",
            up(&["--min", "0", "--desired", "0", "--max", "0"]),
            "--max 0",
        ),
        (
            "bad stack name",
            ["--stack", "Bad_Stack"]
                .iter()
                .map(|s| s.to_string())
                .chain(up_args())
                .collect(),
            "Bad_Stack",
        ),
        (
            "stack name too long",
            ["--stack", "s234567890123456789012345678901234"]
                .iter()
                .map(|s| s.to_string())
                .chain(up_args())
                .collect(),
            "s234567890123456789012345678901234",
        ),
        (
            "malformed instance type",
            up(&["--instance-type", "m4xlarge"]),
            "m4xlarge",
        ),
        (
            "instance type with upper case",
            up(&["--instance-type", "M4.XLARGE"]),
            "M4.XLARGE",
        ),
        (
            "duration without a unit",
            up(&["--wait-timeout", "600"]),
            "600",
        ),
        (
            "duration that does not parse",
            up(&["--wait-timeout", "ten-minutes"]),
            "ten-minutes",
        ),
        (
            "down timeout without a unit",
            ["down", "--yes", "--timeout", "15"]
                .map(String::from)
                .to_vec(),
            "15",
        ),
        (
            "down timeout that does not parse",
            ["down", "--yes", "--timeout", "1.5m"]
                .map(String::from)
                .to_vec(),
            "1.5m",
        ),
    ];
    let mut problems = Vec::new();
    for (what, args, named) in &cases {
        proxy.clear();
        let mut trial = Trial::new("bad input", *what);
        let out = t.cli_via(&proxy).args(args.clone()).run().await;
        trial.check(out.code == Some(2), || {
            format!("{what}: expected exit 2\n{out}")
        });
        trial.check(out.stderr.contains(named), || {
            format!("{what}: the message must name {named:?}\n{out}")
        });
        let calls = proxy.call_names();
        trial.check(calls.is_empty(), || {
            format!("{what}: refused input must make no AWS call, made {calls:?}")
        });
        trial.calls += calls.len();
        trial.record();
        problems.extend(trial.problems);
    }

    // A key pair that does not exist: one read, then exit 2, nothing changed.
    proxy.clear();
    let mut trial = Trial::new("bad input", "key pair that does not exist");
    let out = t
        .cli_via(&proxy)
        .args(up(&["--key-pair", "no-such-key"]))
        .run()
        .await;
    trial.check(out.code == Some(2), || {
        format!("missing key pair: expected exit 2\n{out}")
    });
    trial.check(out.stderr.contains("no-such-key"), || {
        format!("missing key pair: the message must name it\n{out}")
    });
    let calls = proxy.call_names();
    trial.check(calls == vec!["ec2:DescribeKeyPairs".to_string()], || {
        format!("missing key pair: expected exactly one DescribeKeyPairs, made {calls:?}")
    });
    trial.calls += calls.len();
    let left = t.aws.inventory().await.orphans();
    trial.add_orphans("after the refused runs", &left);
    trial.check(!t.state_path(DEFAULT_STACK).exists(), || {
        "a refused run wrote a state file".to_string()
    });
    trial.record();
    problems.extend(trial.problems);
    assert!(
        problems.is_empty(),
        "bad input: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Security
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_port_is_open_to_the_world_unless_asked_and_then_with_a_warning() {
    let t = TestEnv::reusing().await;
    let out = t.cli().args(up_args()).run().await;
    out.assert_success();
    assert!(
        !out.stderr.to_lowercase().contains("warning"),
        "no warning expected for {ALLOW_CIDR}:\n{out}"
    );
    let group = t
        .aws
        .security_group(&format!("{DEFAULT_STACK}-sg"))
        .await
        .expect("security group");
    let rules = ingress_rules(&group);
    assert_eq!(
        rules,
        expected_rules(group.group_id().unwrap_or_default(), &[ALLOW_CIDR]),
        "ingress rules"
    );
    assert!(
        rules
            .iter()
            .all(|(_, _, _, source)| source != "0.0.0.0/0" && source != "::/0"),
        "open to the world without being asked: {rules:?}"
    );

    let open = t
        .cli()
        .args([
            "--stack",
            "open",
            "up",
            "--allow-cidr",
            "0.0.0.0/0",
            "--no-wait",
        ])
        .run()
        .await;
    open.assert_success();
    let warning = open
        .stderr
        .lines()
        .find(|l| l.to_lowercase().contains("warning") && l.contains("0.0.0.0/0"));
    assert!(
        warning.is_some(),
        "--allow-cidr 0.0.0.0/0 must warn on stderr:\n{open}"
    );
    assert!(
        !open.stdout.to_lowercase().contains("warning"),
        "the warning belongs on stderr:\n{open}"
    );
    let group = t.aws.security_group("open-sg").await.expect("open-sg");
    assert_eq!(
        ingress_rules(&group),
        expected_rules(group.group_id().unwrap_or_default(), &["0.0.0.0/0"])
    );
    clean_up(&t, &["open", DEFAULT_STACK]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consul_server_and_the_launch_configuration_require_imdsv2() {
    let t = TestEnv::reusing().await;
    t.cli().args(up_args()).run().await.assert_success();
    let consul = t
        .aws
        .live_instances(&format!("{DEFAULT_STACK}-consul-server"))
        .await;
    assert_eq!(consul.len(), 1, "one consul server");
    let options = consul[0].metadata_options().expect("metadata options");
    assert_eq!(
        options.http_tokens().map(|v| v.as_str()),
        Some("required"),
        "consul server: {options:?}"
    );
    let lc = t
        .aws
        .launch_configuration(&format!("{DEFAULT_STACK}-lc"))
        .await
        .expect("launch configuration");
    let options = lc
        .metadata_options()
        .expect("launch configuration metadata options");
    assert_eq!(
        options.http_tokens().map(|v| v.as_str()),
        Some("required"),
        "launch configuration: {options:?}"
    );
    assert!(
        options.http_put_response_hop_limit().unwrap_or(1) <= 2,
        "hop limit: {options:?}"
    );
    clean_up(&t, &[DEFAULT_STACK]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_policy_grants_only_what_the_nodes_use() {
    let t = TestEnv::reusing().await;
    t.cli().args(up_args()).run().await.assert_success();
    let policy = t
        .aws
        .role_policy(INSTANCE_ROLE, &format!("{DEFAULT_STACK}-policy"))
        .await
        .expect("the stack's policy");
    let (actions, non_allow) = allowed_actions(&policy);
    assert_eq!(
        actions.into_iter().collect::<Vec<_>>(),
        vec!["ec2:DescribeInstances".to_string()],
        "policy: {policy:#}"
    );
    assert!(!non_allow, "only Allow statements expected: {policy:#}");
    let role = t.aws.role(INSTANCE_ROLE).await.expect("role");
    assert_eq!(
        role.inline_policies,
        vec![format!("{DEFAULT_STACK}-policy")],
        "inline policies on the role"
    );
    assert_eq!(
        role.attached_policies,
        vec![ECS_MANAGED_POLICY_ARN.to_string()],
        "managed policies on the role"
    );
    let trust = serde_json::to_string(&role.trust).unwrap_or_default();
    assert!(
        trust.contains("ec2.amazonaws.com") && !trust.contains("\"*\""),
        "the role must be assumable by EC2 only: {trust}"
    );
    clean_up(&t, &[DEFAULT_STACK]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_is_private_and_holds_no_secret() {
    let t = TestEnv::reusing().await;
    const KEY_ID: &str = "AKIAL5DECSKEYID00001";
    const SECRET: &str = "l5dEcsSecretKey/ThatMustNeverBeWritten0";
    const TOKEN: &str = "l5dEcsSessionTokenThatMustNeverBeWritten";
    let run = |args: Vec<String>| {
        t.cli()
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SESSION_TOKEN", TOKEN)
            .args(args)
            .run()
    };
    run(up_args()).await.assert_success();
    // A second run rewrites the file and keeps a backup.
    run(["role-policy"].map(String::from).to_vec())
        .await
        .assert_success();
    let state = t.state_path(DEFAULT_STACK);
    assert_state_file(&state, DEFAULT_STACK, REGION);
    let dir = state.parent().expect("state dir");
    for name in files_in(dir) {
        let path = dir.join(&name);
        assert_eq!(file_mode(&path), 0o600, "{name} must be mode 0600");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for secret in [KEY_ID, SECRET, TOKEN, "test"] {
            assert!(
                !text.contains(secret),
                "{name} holds the credential {secret:?}:\n{text}"
            );
        }
        let lower = text.to_lowercase();
        for word in [
            "secret_access_key",
            "session_token",
            "aws_secret",
            "password",
        ] {
            assert!(!lower.contains(word), "{name} mentions {word:?}:\n{text}");
        }
    }
    clean_up(&t, &[DEFAULT_STACK]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_unknown_version_state_file_is_refused_and_left_untouched() {
    let t = TestEnv::reusing().await;
    let proxy = t.proxy().await;
    let state = t.state_path(DEFAULT_STACK);
    std::fs::create_dir_all(state.parent().expect("dir")).expect("create state dir");
    let unknown_version = serde_json::json!({
        "format_version": 99,
        "lineage": "0123456789abcdef",
        "serial": 7,
        "stack": DEFAULT_STACK,
        "region": REGION,
        "account_id": ACCOUNT_ID,
        "resources": {}
    })
    .to_string();
    let contents = [
        (
            "not JSON",
            "{\"format_version\": 1, \"stack\": ".to_string(),
        ),
        ("unknown format version", unknown_version),
        ("empty", String::new()),
    ];
    for (what, content) in &contents {
        for args in [up_args(), down_args(), vec!["status".to_string()]] {
            std::fs::write(&state, content).expect("write state");
            proxy.clear();
            let out = t.cli_via(&proxy).args(args.clone()).run().await;
            assert!(
                out.code.is_some_and(|c| c != 0),
                "{what}: {args:?} must fail\n{out}"
            );
            assert!(
                out.stderr.contains(&state.display().to_string())
                    || out.stderr.contains("state file"),
                "{what}: the error must name the state file\n{out}"
            );
            let after = std::fs::read_to_string(&state).expect("state file still there");
            assert_eq!(&after, content, "{what}: {args:?} changed the state file");
            let calls = proxy.call_names();
            assert!(
                proxy.mutating_calls().is_empty(),
                "{what}: {args:?} made mutating calls {calls:?}"
            );
            let names = files_in(state.parent().expect("dir"));
            assert!(
                !names
                    .iter()
                    .any(|n| n.ends_with(".lock") || n.ends_with(".backup")),
                "{what}: {args:?} left {names:?}"
            );
        }
    }
    let orphans = t.aws.inventory().await.orphans();
    assert!(
        orphans.is_empty(),
        "a refused state file must not lead to any create: {orphans:?}"
    );
}
