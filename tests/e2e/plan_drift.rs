//! `plan` / `up --dry-run` and drift repair by `up` (issue 6), against moto.
//!
//! - `plan` on an empty account lists every resource of the stack as `create`, says how many
//!   vCPUs the stack will run, and makes no mutating call (the counting proxy sees every call);
//! - after changes behind the tool's back through the AWS API (an inbound rule revoked, the ASG
//!   set to 0/0/0, the latest linkerd task definition deregistered), `plan` names each
//!   difference and `up` repairs exactly those: through the proxy, its only mutating calls are
//!   the four repairs; afterwards `plan` shows every row `keep`;
//! - ASG sizes come from the flags, else the state file (the last `up`), else 1/3/2;
//! - a terminated consul server is replaced, a deleted daemon service created again;
//! - a launch configuration that differs (another instance type) is replaced under a new name
//!   derived from `<stack>-lc`: the ASG is pointed at it before the old one is deleted, and
//!   the running nodes are kept.
//!
//! Assertions read AWS state back through the SDK and the tool's `--output json` document.

use crate::drift_support::*;
use crate::support::*;

/// `up --allow-cidr ALLOW_CIDR --no-wait [extra]`, straight to moto; must succeed.
async fn up(t: &TestEnv, extra: &[&str]) {
    t.cli()
        .args(["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"])
        .args(extra.iter().copied())
        .run()
        .await
        .assert_success();
}

/// `plan [args]` through a fresh proxy: the rows, and the proof it made no mutating call.
async fn plan_via_proxy(t: &TestEnv, args: &[&str]) -> (Output, serde_json::Value, Vec<Row>) {
    plan_via_proxy_expecting(t, args, plan_resources(DEFAULT_STACK)).await
}

/// As [`plan_via_proxy`], expecting the rows `want` (kind, name).
async fn plan_via_proxy_expecting(
    t: &TestEnv,
    args: &[&str],
    want: Vec<(String, String)>,
) -> (Output, serde_json::Value, Vec<Row>) {
    let proxy = t.proxy().await;
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    let (out, report) = run_json(t.cli_via(&proxy), &all).await;
    out.assert_success();
    assert!(
        proxy.requests_seen() > 0,
        "plan made no AWS call at all: it cannot have looked\n{out}"
    );
    assert_eq!(
        mutating_ops(&proxy),
        Vec::<String>::new(),
        "plan must make no mutating call; calls: {:?}\n{out}",
        proxy.call_names()
    );
    let rows = rows(&out, &report);
    assert_plan_rows_with(&rows, want);
    (out, report, rows)
}

/// Panics unless every row is `keep` and the summary counts no change.
#[track_caller]
fn assert_all_keep(out: &Output, report: &serde_json::Value, rows: &[Row]) {
    assert!(
        changes(rows).is_empty(),
        "every row should be `keep`:\n{}\n{out}",
        show(rows)
    );
    assert_eq!(report["plan"]["changes"], 0, "{out}");
}

/// The security group's rules as (protocol, from port, CIDR) for the CIDR rules.
async fn cidr_rules(t: &TestEnv) -> Vec<(String, i32, String)> {
    let sg = t
        .aws
        .security_group(&format!("{DEFAULT_STACK}-sg"))
        .await
        .expect("the stack's security group");
    let mut rules = Vec::new();
    for p in sg.ip_permissions() {
        for r in p.ip_ranges() {
            rules.push((
                p.ip_protocol().unwrap_or_default().to_string(),
                p.from_port().unwrap_or(-1),
                r.cidr_ip().unwrap_or_default().to_string(),
            ));
        }
    }
    rules.sort();
    rules
}

/// (min, max, desired) of the stack's ASG.
async fn asg_sizes(t: &TestEnv) -> (i32, i32, i32) {
    let g = t
        .aws
        .auto_scaling_group(&format!("{DEFAULT_STACK}-asg"))
        .await
        .expect("the stack's ASG");
    (
        g.min_size().unwrap_or(-1),
        g.max_size().unwrap_or(-1),
        g.desired_capacity().unwrap_or(-1),
    )
}

/// Task definition ARN a daemon service runs (None when the service is gone or INACTIVE).
async fn service_task_definition(t: &TestEnv, daemon: &str) -> Option<String> {
    let name = format!("{DEFAULT_STACK}-{daemon}");
    t.aws
        .live_services(DEFAULT_STACK, std::slice::from_ref(&name))
        .await
        .into_iter()
        .find(|s| s.service_name() == Some(name.as_str()))
        .and_then(|s| s.task_definition().map(str::to_string))
}

// ---------------------------------------------------------------------------------------------
// plan on an empty account
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_on_an_empty_account_lists_every_resource_as_create_and_changes_nothing() {
    let t = TestEnv::new().await;
    let (out, report, rows) = plan_via_proxy(&t, &["--allow-cidr", ALLOW_CIDR]).await;

    for r in &rows {
        assert_eq!(r.action, "create", "on an empty account: {r}\n{out}");
    }
    assert_eq!(report["command"], "plan");
    assert_eq!(report["ok"], true);
    let asg = row(&rows, "auto-scaling-group", &format!("{DEFAULT_STACK}-asg"));
    assert_eq!(
        asg.detail.as_deref(),
        Some("min 1 max 3 desired 2"),
        "the ASG row names the default sizes\n{out}"
    );
    // The consul server and --max (3) m4.xlarge nodes: 4 instances of 4 vCPUs.
    let plan = &report["plan"];
    assert_eq!(plan["instance_type"], "m4.xlarge", "{out}");
    assert_eq!(plan["vcpus_per_instance"], 4, "{out}");
    assert_eq!(plan["instances_at_most"], 4, "{out}");
    assert_eq!(plan["vcpus_at_most"], 16, "{out}");
    assert_eq!(plan["changes"], rows.len(), "{out}");

    // Nothing was made, and no state file was written.
    let snap = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(
        snap.leftovers(),
        Vec::<String>::new(),
        "plan created something"
    );
    assert!(
        t.aws.role(INSTANCE_ROLE).await.is_none(),
        "plan created the role"
    );
    assert!(
        !t.state_path(DEFAULT_STACK).exists(),
        "plan wrote a state file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_dry_run_is_plan_and_changes_nothing() {
    let t = TestEnv::new().await;
    let (_, plan_report, plan_rows) = plan_via_proxy(&t, &["--allow-cidr", ALLOW_CIDR]).await;

    let proxy = t.proxy().await;
    let (out, report) = run_json(
        t.cli_via(&proxy),
        &["up", "--allow-cidr", ALLOW_CIDR, "--dry-run"],
    )
    .await;
    out.assert_success();
    assert_eq!(
        mutating_ops(&proxy),
        Vec::<String>::new(),
        "up --dry-run must make no mutating call\n{out}"
    );
    assert_eq!(report["command"], "plan", "{out}");
    assert_eq!(
        rows(&out, &report),
        plan_rows,
        "up --dry-run shows what plan shows"
    );
    assert_eq!(report["plan"], plan_report["plan"]);
    let snap = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(
        snap.leftovers(),
        Vec::<String>::new(),
        "--dry-run created something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_counts_the_vcpus_of_the_consul_server_and_max_nodes_and_takes_the_up_flags() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    let (out, report) = run_json(
        t.cli_via(&proxy),
        &[
            "plan",
            "--allow-cidr",
            ALLOW_CIDR,
            "--instance-type",
            "m5.large",
            "--min",
            "2",
            "--desired",
            "3",
            "--max",
            "5",
            "--launch-template",
        ],
    )
    .await;
    out.assert_success();
    assert_eq!(mutating_ops(&proxy), Vec::<String>::new(), "{out}");
    let rows = rows(&out, &report);
    // --launch-template: a launch template row instead of the launch configuration.
    let launch: Vec<&Row> = rows
        .iter()
        .filter(|r| r.kind.starts_with("launch-"))
        .collect();
    assert_eq!(launch.len(), 1, "{}", show(&rows));
    assert_eq!(launch[0].kind, "launch-template", "{}", show(&rows));
    assert_eq!(launch[0].name, format!("{DEFAULT_STACK}-lt"));
    assert_eq!(launch[0].action, "create");
    let asg = row(&rows, "auto-scaling-group", &format!("{DEFAULT_STACK}-asg"));
    assert_eq!(
        asg.detail.as_deref(),
        Some("min 2 max 5 desired 3"),
        "{out}"
    );
    // m5.large has 2 vCPUs: consul server + 5 nodes = 6 instances, 12 vCPUs.
    let plan = &report["plan"];
    assert_eq!(plan["instance_type"], "m5.large", "{out}");
    assert_eq!(plan["vcpus_per_instance"], 2, "{out}");
    assert_eq!(plan["instances_at_most"], 6, "{out}");
    assert_eq!(plan["vcpus_at_most"], 12, "{out}");

    // The text form says the same.
    let text = t
        .cli()
        .args(["plan", "--allow-cidr", ALLOW_CIDR, "--max", "5"])
        .run()
        .await;
    text.assert_success();
    assert!(
        text.stdout
            .contains("At most 6 m4.xlarge instance(s) (consul server + --max nodes): 24 vCPUs"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_refuses_bad_sizes_before_any_aws_call() {
    let t = TestEnv::new().await;
    let proxy = t.proxy().await;
    let out = t
        .cli_via(&proxy)
        .args([
            "plan",
            "--allow-cidr",
            ALLOW_CIDR,
            "--min",
            "3",
            "--max",
            "2",
        ])
        .run()
        .await;
    out.assert_code(2);
    assert_eq!(proxy.requests_seen(), 0, "{:?}", proxy.call_names());
}

// ---------------------------------------------------------------------------------------------
// After `up`
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_after_up_keeps_everything() {
    let t = TestEnv::new().await;
    up(&t, &[]).await;
    // With the flags of `up`, and with none (the state file says the CIDR and sizes).
    for args in [&["--allow-cidr", ALLOW_CIDR][..], &[][..]] {
        let (out, report, rows) = plan_via_proxy(&t, args).await;
        assert_all_keep(&out, &report, &rows);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_repairs_exactly_the_drift_plan_names() {
    let t = TestEnv::new().await;
    up(&t, &[]).await;
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    before.assert_complete(DEFAULT_STACK);
    let rules_before = cidr_rules(&t).await;
    assert!(
        rules_before.contains(&("tcp".into(), 22, ALLOW_CIDR.into())),
        "{rules_before:?}"
    );
    let linkerd = format!("{DEFAULT_STACK}-linkerd");
    let linkerd_revisions = t.aws.active_task_definitions(&linkerd).await;
    assert_eq!(linkerd_revisions.len(), 1, "{linkerd_revisions:?}");

    // Behind the tool's back: revoke ssh from the allowed CIDR, empty the ASG, deregister the
    // latest linkerd task definition revision.
    let sg_id = before.security_group.clone().expect("security group id");
    t.aws
        .ec2
        .revoke_security_group_ingress()
        .group_id(&sg_id)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip(ALLOW_CIDR)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("revoke tcp 22");
    assert!(!cidr_rules(&t)
        .await
        .contains(&("tcp".into(), 22, ALLOW_CIDR.into())));
    t.aws
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(format!("{DEFAULT_STACK}-asg"))
        .min_size(0)
        .max_size(0)
        .desired_capacity(0)
        .send()
        .await
        .expect("set the ASG to 0/0/0");
    assert_eq!(asg_sizes(&t).await, (0, 0, 0));
    t.aws
        .ecs
        .deregister_task_definition()
        .task_definition(&linkerd_revisions[0])
        .send()
        .await
        .expect("deregister the linkerd task definition");
    assert!(t.aws.active_task_definitions(&linkerd).await.is_empty());

    // plan names each difference, and only those.
    let (out, report, rows) = plan_via_proxy(&t, &[]).await;
    let sg = row(&rows, "security-group", &format!("{DEFAULT_STACK}-sg"));
    assert_eq!(sg.action, "repair", "{}", show(&rows));
    let detail = sg.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("22") && detail.contains(ALLOW_CIDR),
        "the security group row names the missing rule (tcp 22 from {ALLOW_CIDR}): {sg}"
    );
    assert!(
        !["4140", "9990", "3000", "8500"]
            .iter()
            .any(|p| detail.contains(p)),
        "only the missing rule is named: {sg}"
    );
    let asg = row(&rows, "auto-scaling-group", &format!("{DEFAULT_STACK}-asg"));
    assert_eq!(asg.action, "repair", "{}", show(&rows));
    let detail = asg.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("0/0/0") && detail.contains("1/3/2"),
        "the ASG row names the sizes it has (0/0/0) and the ones it should have (1/3/2): {asg}"
    );
    let td = row(&rows, "task-definition", &linkerd);
    assert_ne!(td.action, "keep", "{}", show(&rows));
    let svc = row(&rows, "daemon-service", &linkerd);
    assert_eq!(svc.action, "repair", "{}", show(&rows));
    let mut changed: Vec<(String, String)> = changes(&rows)
        .iter()
        .map(|r| (r.kind.clone(), r.name.clone()))
        .collect();
    changed.sort();
    let mut want = vec![
        (
            "auto-scaling-group".to_string(),
            format!("{DEFAULT_STACK}-asg"),
        ),
        ("daemon-service".to_string(), linkerd.clone()),
        ("security-group".to_string(), format!("{DEFAULT_STACK}-sg")),
        ("task-definition".to_string(), linkerd.clone()),
    ];
    want.sort();
    assert_eq!(changed, want, "rows that are not `keep`:\n{}", show(&rows));
    assert_eq!(report["plan"]["changes"], 4, "{out}");

    // up repairs exactly those: four mutating calls, one per difference.
    let proxy = t.proxy().await;
    let (out, report) = run_json(t.cli_via(&proxy), &["up", "--no-wait"]).await;
    out.assert_success();
    assert_eq!(report["ok"], true);
    assert_eq!(
        mutating_ops(&proxy),
        vec![
            "autoscaling:UpdateAutoScalingGroup".to_string(),
            "ec2:AuthorizeSecurityGroupIngress".to_string(),
            "ecs:RegisterTaskDefinition".to_string(),
            "ecs:UpdateService".to_string(),
        ],
        "up must repair the drift and touch nothing else; all calls: {:?}\n{out}",
        proxy.call_names()
    );
    // ... with the right parameters.
    let authorize = &calls_of(&proxy, "AuthorizeSecurityGroupIngress")[0];
    let params = form_params(&authorize.body);
    let values: Vec<&String> = params.values().collect();
    assert!(
        values.iter().any(|v| v.as_str() == ALLOW_CIDR)
            && values.iter().any(|v| v.as_str() == "22")
            && !values
                .iter()
                .any(|v| ["4140", "9990", "3000", "8500"].contains(&v.as_str())),
        "only tcp 22 from {ALLOW_CIDR} is added back: {params:?}"
    );
    let update = form_params(&calls_of(&proxy, "UpdateAutoScalingGroup")[0].body);
    assert_eq!(
        update.get("MinSize").map(String::as_str),
        Some("1"),
        "{update:?}"
    );
    assert_eq!(
        update.get("MaxSize").map(String::as_str),
        Some("3"),
        "{update:?}"
    );
    assert_eq!(
        update.get("DesiredCapacity").map(String::as_str),
        Some("2"),
        "{update:?}"
    );
    let register = json_body(&calls_of(&proxy, "RegisterTaskDefinition")[0]);
    assert_eq!(register["family"], linkerd.as_str(), "{register}");
    let service = json_body(&calls_of(&proxy, "UpdateService")[0]);
    assert_eq!(service["service"], linkerd.as_str(), "{service}");

    // AWS is back to what it should be.
    assert!(
        cidr_rules(&t)
            .await
            .contains(&("tcp".into(), 22, ALLOW_CIDR.into())),
        "ssh rule added back"
    );
    assert_eq!(cidr_rules(&t).await, rules_before);
    assert_eq!(asg_sizes(&t).await, (1, 3, 2));
    let active = t.aws.active_task_definitions(&linkerd).await;
    assert_eq!(active.len(), 1, "one new linkerd revision: {active:?}");
    assert_ne!(active, linkerd_revisions, "a new revision, not the old one");
    assert_eq!(
        service_task_definition(&t, "linkerd").await.as_deref(),
        Some(active[0].as_str()),
        "the linkerd service runs the new revision"
    );
    // Untouched: the consul server, the cluster, the launch configuration, the ASG itself,
    // the other task definitions and services.
    let after = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(after.consul_instances, before.consul_instances);
    assert_eq!(after.cluster, before.cluster);
    assert_eq!(after.launch_configuration, before.launch_configuration);
    assert_eq!(after.asg, before.asg);
    assert_eq!(after.services, before.services);
    for f in FAMILIES.iter().filter(|f| **f != "linkerd") {
        let family = format!("{DEFAULT_STACK}-{f}");
        assert_eq!(
            after.task_definitions.get(&family),
            before.task_definitions.get(&family),
            "{family} untouched"
        );
    }

    // Nothing left to do.
    let (out, report, rows) = plan_via_proxy(&t, &[]).await;
    assert_all_keep(&out, &report, &rows);
    let proxy = t.proxy().await;
    run_json(t.cli_via(&proxy), &["up", "--no-wait"])
        .await
        .0
        .assert_success();
    assert_eq!(
        mutating_ops(&proxy),
        Vec::<String>::new(),
        "a second up after the repair changes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asg_sizes_come_from_the_flags_else_the_last_up_else_the_defaults() {
    let t = TestEnv::new().await;
    up(&t, &["--min", "2", "--max", "4", "--desired", "3"]).await;
    assert_eq!(asg_sizes(&t).await, (2, 4, 3));
    let empty_asg = || async {
        t.aws
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(format!("{DEFAULT_STACK}-asg"))
            .min_size(0)
            .max_size(0)
            .desired_capacity(0)
            .send()
            .await
            .expect("set the ASG to 0/0/0");
    };
    let asg_name = format!("{DEFAULT_STACK}-asg");

    // No flags: what the last `up` asked for (the state file).
    empty_asg().await;
    let (_, _, rows) = plan_via_proxy(&t, &[]).await;
    let asg = row(&rows, "auto-scaling-group", &asg_name);
    assert_eq!(asg.action, "repair", "{}", show(&rows));
    assert!(
        asg.detail.as_deref().unwrap_or_default().contains("2/4/3"),
        "sizes of the last up: {asg}"
    );
    up(&t, &[]).await;
    assert_eq!(
        asg_sizes(&t).await,
        (2, 4, 3),
        "reset to the last up's sizes"
    );

    // Flags given win, each on its own: --desired 1 with the recorded min 2 is refused as
    // usage (min <= desired), --min 1 --desired 1 keeps the recorded max 4.
    empty_asg().await;
    let refused = t.cli().args(["plan", "--desired", "1"]).run().await;
    refused.assert_code(2);
    let (_, _, rows) = plan_via_proxy(&t, &["--min", "1", "--desired", "1"]).await;
    let asg = row(&rows, "auto-scaling-group", &asg_name);
    assert!(
        asg.detail.as_deref().unwrap_or_default().contains("1/4/1"),
        "flags, then the state file for the rest: {asg}"
    );
    up(&t, &["--min", "1", "--desired", "1"]).await;
    assert_eq!(asg_sizes(&t).await, (1, 4, 1), "reset to the flags");
    // ... and that is what the next `up` remembers.
    let (out, report, rows) = plan_via_proxy(&t, &[]).await;
    assert_all_keep(&out, &report, &rows);

    // No state file: the defaults 1/3/2.
    empty_asg().await;
    std::fs::remove_file(t.state_path(DEFAULT_STACK)).expect("remove the state file");
    let (_, _, rows) = plan_via_proxy(&t, &["--allow-cidr", ALLOW_CIDR]).await;
    let asg = row(&rows, "auto-scaling-group", &asg_name);
    assert_eq!(asg.action, "repair", "{}", show(&rows));
    assert!(
        asg.detail.as_deref().unwrap_or_default().contains("1/3/2"),
        "the defaults without a state file: {asg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_consul_server_is_replaced_and_a_deleted_daemon_service_created_again() {
    let t = TestEnv::new().await;
    up(&t, &[]).await;
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    let consul_name = format!("{DEFAULT_STACK}-consul-server");
    let old_consul = before.consul_instances[0].0.clone();
    t.aws
        .ec2
        .terminate_instances()
        .instance_ids(&old_consul)
        .send()
        .await
        .expect("terminate the consul server");
    let agent = format!("{DEFAULT_STACK}-consul-agent");
    t.aws
        .ecs
        .delete_service()
        .cluster(DEFAULT_STACK)
        .service(&agent)
        .force(true)
        .send()
        .await
        .expect("delete the consul-agent service");
    // Deleted: DRAINING a while as on AWS (the rules layer), then INACTIVE; `up` waits out a
    // drain before it makes the service again.
    let status = t
        .aws
        .live_services(DEFAULT_STACK, std::slice::from_ref(&agent))
        .await
        .into_iter()
        .find_map(|s| s.status().map(str::to_string));
    assert_ne!(status.as_deref(), Some("ACTIVE"), "deleted");

    let (out, _, rows) = plan_via_proxy(&t, &[]).await;
    let consul = row(&rows, "consul-server", &consul_name);
    assert_eq!(consul.action, "replace", "{}", show(&rows));
    assert!(
        consul
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains(&old_consul),
        "names the instance that is gone: {consul}"
    );
    let svc = row(&rows, "daemon-service", &agent);
    assert_eq!(svc.action, "create", "{}", show(&rows));
    assert_eq!(
        changes(&rows).len(),
        2,
        "only those two:\n{}\n{out}",
        show(&rows)
    );

    let proxy = t.proxy().await;
    let (out, _) = run_json(t.cli_via(&proxy), &["up", "--no-wait"]).await;
    out.assert_success();
    let ops = mutating_ops(&proxy);
    assert_eq!(
        ops.iter()
            .filter(|o| o.as_str() == "ec2:RunInstances")
            .count(),
        1,
        "one new consul server: {ops:?}"
    );
    let creates = calls_of(&proxy, "CreateService");
    assert_eq!(creates.len(), 1, "{ops:?}");
    assert_eq!(json_body(&creates[0])["serviceName"], agent.as_str());
    // A new instance may be tagged in its RunInstances call or after; nothing else changes.
    for op in &ops {
        assert!(
            ["ec2:RunInstances", "ecs:CreateService", "ec2:CreateTags"].contains(&op.as_str()),
            "up made an unexpected change: {op} (all: {ops:?})\n{out}"
        );
    }

    let after = t.aws.snapshot(DEFAULT_STACK).await;
    after.assert_complete(DEFAULT_STACK);
    assert_eq!(after.consul_instances.len(), 1);
    assert_ne!(
        after.consul_instances[0].0, old_consul,
        "a new consul server"
    );
    assert!(service_task_definition(&t, "consul-agent").await.is_some());
    assert_eq!(
        after.node_instances, before.node_instances,
        "nodes untouched"
    );
    assert_eq!(after.asg, before.asg);
    assert_eq!(after.launch_configuration, before.launch_configuration);
    let (out, report, rows) = plan_via_proxy(&t, &[]).await;
    assert_all_keep(&out, &report, &rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_launch_configuration_is_replaced_under_a_new_name_and_nodes_are_kept() {
    let t = TestEnv::new().await;
    up(&t, &[]).await;
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(before.node_instances.len(), 2, "{before:?}");
    let old_lc = format!("{DEFAULT_STACK}-lc");
    let asg_name = format!("{DEFAULT_STACK}-asg");

    // plan says what differs, that the configuration is replaced, and that nodes stay.
    let (out, report, rows) = plan_via_proxy(&t, &["--instance-type", "m5.large"]).await;
    let lc = row(&rows, "launch-configuration", &old_lc);
    assert_eq!(lc.action, "replace", "{}", show(&rows));
    let detail = lc.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("m4.xlarge") && detail.contains("m5.large"),
        "names the difference: {lc}"
    );
    assert!(
        detail.contains("not replaced"),
        "says the running nodes are not replaced: {lc}"
    );
    assert_eq!(
        changes(&rows).len(),
        1,
        "only the launch configuration:\n{}",
        show(&rows)
    );
    assert_eq!(
        report["plan"]["vcpus_at_most"], 8,
        "4 m5.large of 2 vCPUs\n{out}"
    );

    let proxy = t.proxy().await;
    let (out, _) = run_json(
        t.cli_via(&proxy),
        &["up", "--instance-type", "m5.large", "--no-wait"],
    )
    .await;
    out.assert_success();
    let ops = mutating_ops(&proxy);
    assert_eq!(
        ops,
        vec![
            "autoscaling:CreateLaunchConfiguration".to_string(),
            "autoscaling:DeleteLaunchConfiguration".to_string(),
            "autoscaling:UpdateAutoScalingGroup".to_string(),
        ],
        "a new configuration, the ASG pointed at it, the old one deleted; nothing else\n{out}"
    );
    let create = form_params(&calls_of(&proxy, "CreateLaunchConfiguration")[0].body);
    let new_lc = create
        .get("LaunchConfigurationName")
        .cloned()
        .unwrap_or_default();
    assert!(
        new_lc.starts_with(&format!("{old_lc}-")) && new_lc.len() > old_lc.len() + 1,
        "a new name derived from {old_lc}: {new_lc:?}"
    );
    assert_eq!(
        create.get("InstanceType").map(String::as_str),
        Some("m5.large")
    );
    let update = form_params(&calls_of(&proxy, "UpdateAutoScalingGroup")[0].body);
    assert_eq!(
        update.get("LaunchConfigurationName"),
        Some(&new_lc),
        "the ASG is pointed at the new configuration: {update:?}"
    );
    let delete = form_params(&calls_of(&proxy, "DeleteLaunchConfiguration")[0].body);
    assert_eq!(delete.get("LaunchConfigurationName"), Some(&old_lc));
    assert!(
        proxy.first_index("UpdateAutoScalingGroup")
            < proxy.first_index("DeleteLaunchConfiguration"),
        "the ASG is pointed at the new configuration before the old one is deleted: {:?}",
        proxy.call_names()
    );

    let group = t.aws.auto_scaling_group(&asg_name).await.expect("the ASG");
    assert_eq!(group.launch_configuration_name(), Some(new_lc.as_str()));
    assert!(
        t.aws.launch_configuration(&old_lc).await.is_none(),
        "old one deleted"
    );
    let lc = t
        .aws
        .launch_configuration(&new_lc)
        .await
        .expect("the new launch configuration");
    assert_eq!(lc.instance_type(), Some("m5.large"));
    let after = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(
        after.node_instances, before.node_instances,
        "running nodes are kept"
    );
    assert_eq!(after.consul_instances, before.consul_instances);
    assert_eq!(after.asg, before.asg);

    // The state file follows: plan with the same flags keeps everything, under the new name.
    let (out, report, rows) = plan_via_proxy_expecting(
        &t,
        &["--instance-type", "m5.large"],
        plan_resources_with_launch(DEFAULT_STACK, "launch-configuration", &new_lc),
    )
    .await;
    assert_all_keep(&out, &report, &rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_launch_template_gets_a_new_version_and_the_type_is_kept_for_later_runs() {
    let t = TestEnv::new().await;
    up(&t, &["--launch-template"]).await;
    let before = t.aws.snapshot(DEFAULT_STACK).await;
    let lt_name = format!("{DEFAULT_STACK}-lt");
    let lt = t
        .aws
        .launch_template(&lt_name)
        .await
        .expect("the launch template");
    let lt_id = lt.launch_template_id().unwrap_or_default().to_owned();
    assert_eq!(lt.latest_version_number(), Some(1));

    // plan names the difference and says a new version, nodes kept.
    let (_, _, rows) = plan_via_proxy_expecting(
        &t,
        &["--instance-type", "m5.large"],
        plan_resources_with_launch(DEFAULT_STACK, "launch-template", &lt_name),
    )
    .await;
    let row_lt = row(&rows, "launch-template", &lt_name);
    assert_eq!(row_lt.action, "repair", "{}", show(&rows));
    let detail = row_lt.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("m4.xlarge") && detail.contains("m5.large") && detail.contains("version"),
        "names the difference and the new version: {row_lt}"
    );
    assert_eq!(
        changes(&rows).len(),
        1,
        "only the template:\n{}",
        show(&rows)
    );

    // up adds exactly one version, and nothing else.
    let proxy = t.proxy().await;
    let (out, _) = run_json(
        t.cli_via(&proxy),
        &["up", "--instance-type", "m5.large", "--no-wait"],
    )
    .await;
    out.assert_success();
    assert_eq!(
        mutating_ops(&proxy),
        vec!["ec2:CreateLaunchTemplateVersion".to_string()],
        "one new template version, nothing else\n{out}"
    );
    let lt = t
        .aws
        .launch_template(&lt_name)
        .await
        .expect("the launch template");
    assert_eq!(lt.latest_version_number(), Some(2));
    // The ASG launches from $Latest.
    let latest = t
        .aws
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&lt_id)
        .versions("$Latest")
        .send()
        .await
        .expect("describe_launch_template_versions");
    let data = latest.launch_template_versions()[0]
        .launch_template_data()
        .expect("launch template data")
        .clone();
    assert_eq!(
        data.instance_type().map(|i| i.as_str()),
        Some("m5.large"),
        "$Latest starts m5.large nodes"
    );
    let after = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(
        after.node_instances, before.node_instances,
        "running nodes are kept"
    );

    // A later plan without the flag keeps the type the last up asked for.
    let (out, report, rows) = plan_via_proxy_expecting(
        &t,
        &[],
        plan_resources_with_launch(DEFAULT_STACK, "launch-template", &lt_name),
    )
    .await;
    assert_all_keep(&out, &report, &rows);
    assert_eq!(report["plan"]["instance_type"], "m5.large", "{out}");
}
