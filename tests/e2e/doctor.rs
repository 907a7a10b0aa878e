//! `doctor` (issue 6), against moto: a preflight checklist, each line ok / problem / unknown.
//! It passes on a healthy account (moto cannot answer the quota and policy-simulator checks:
//! `unknown`, which does not fail), and fails with exit 1, naming the problem, when the
//! region has no default VPC or `--key-pair` names a key pair that does not exist. It makes no
//! mutating call.

use crate::drift_support::*;
use crate::support::*;

/// One line of the `doctor` array.
#[derive(Clone, Debug)]
struct Line {
    check: String,
    verdict: String,
    detail: String,
    fix: Option<String>,
}

/// The `doctor` lines of a JSON report.
#[track_caller]
fn lines(out: &Output, report: &serde_json::Value) -> Vec<Line> {
    let list = report["doctor"]
        .as_array()
        .unwrap_or_else(|| panic!("no `doctor` array in the JSON report\n{out}"));
    assert!(!list.is_empty(), "no doctor lines\n{out}");
    list.iter()
        .map(|l| {
            let s = |k: &str| {
                l[k].as_str()
                    .unwrap_or_else(|| panic!("doctor line without string `{k}`: {l}\n{out}"))
                    .to_string()
            };
            let line = Line {
                check: s("check"),
                verdict: s("verdict"),
                detail: s("detail"),
                fix: l["fix"].as_str().map(str::to_string),
            };
            assert!(
                ["ok", "problem", "unknown"].contains(&line.verdict.as_str()),
                "verdict must be ok, problem or unknown: {l}"
            );
            assert!(!line.detail.is_empty(), "every line says something: {l}");
            if line.verdict == "problem" {
                assert!(
                    line.fix.as_deref().is_some_and(|f| !f.is_empty()),
                    "a problem says how to fix it: {l}"
                );
            }
            line
        })
        .collect()
}

/// The line of `check` (exactly one).
#[track_caller]
fn line<'a>(lines: &'a [Line], check: &str) -> &'a Line {
    let found: Vec<&Line> = lines.iter().filter(|l| l.check == check).collect();
    assert_eq!(found.len(), 1, "one `{check}` line: {lines:#?}");
    found[0]
}

/// `doctor [args] --output json` through a proxy; proves it made no mutating call.
async fn doctor(t: &TestEnv, args: &[&str]) -> (Output, serde_json::Value, Vec<Line>) {
    let proxy = t.proxy().await;
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let (out, report) = run_json(t.cli_via(&proxy), &all).await;
    assert_eq!(
        mutating_ops(&proxy),
        Vec::<String>::new(),
        "doctor must make no mutating call\n{out}"
    );
    assert_eq!(report["command"], "doctor", "{out}");
    let lines = lines(&out, &report);
    (out, report, lines)
}

/// Deletes the region's default VPC with its default subnets (moto allows it once the
/// subnets are gone; an attached internet gateway is detached and deleted first).
async fn delete_default_vpc(aws: &Aws) {
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(ec2_filter("is-default", "true"))
        .send()
        .await
        .expect("describe_vpcs");
    let vpc_id = vpcs
        .vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .expect("moto has a default VPC")
        .to_string();
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(ec2_filter("vpc-id", &vpc_id))
        .send()
        .await
        .expect("describe_subnets");
    for s in subnets.subnets() {
        aws.ec2
            .delete_subnet()
            .subnet_id(s.subnet_id().unwrap_or_default())
            .send()
            .await
            .expect("delete_subnet");
    }
    let gateways = aws
        .ec2
        .describe_internet_gateways()
        .filters(ec2_filter("attachment.vpc-id", &vpc_id))
        .send()
        .await
        .expect("describe_internet_gateways");
    for g in gateways.internet_gateways() {
        let id = g.internet_gateway_id().unwrap_or_default();
        aws.ec2
            .detach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(&vpc_id)
            .send()
            .await
            .expect("detach_internet_gateway");
        aws.ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .expect("delete_internet_gateway");
    }
    aws.ec2
        .delete_vpc()
        .vpc_id(&vpc_id)
        .send()
        .await
        .expect("delete the default VPC");
    let left = aws
        .ec2
        .describe_subnets()
        .filters(ec2_filter("default-for-az", "true"))
        .send()
        .await
        .expect("describe_subnets");
    assert!(left.subnets().is_empty(), "default subnets left: {left:?}");
}

/// The checks the issue lists, in the order `doctor` prints them (the key pair only when
/// `--key-pair` is given).
const CHECKS: [&str; 8] = [
    "region",
    "credentials",
    "VPC and subnet",
    "ECS-optimized AMI",
    "instance type",
    "on-demand vCPU quota",
    "launch configurations",
    "IAM permissions",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_on_a_healthy_account() {
    let t = TestEnv::new().await;
    let (out, report, lines) = doctor(&t, &[]).await;
    out.assert_success();
    assert_eq!(report["ok"], true, "{out}");
    let checks: Vec<&str> = lines.iter().map(|l| l.check.as_str()).collect();
    assert_eq!(checks, CHECKS, "{out}");
    for l in &lines {
        assert_ne!(
            l.verdict, "problem",
            "no problem on a healthy account: {l:?}\n{out}"
        );
    }
    assert_eq!(line(&lines, "region").detail, REGION);
    let creds = line(&lines, "credentials");
    assert_eq!(creds.verdict, "ok");
    assert!(creds.detail.contains(ACCOUNT_ID), "{creds:?}");
    let (subnet, az) = default_subnet_first_az(&t.aws).await;
    let network = line(&lines, "VPC and subnet");
    assert_eq!(network.verdict, "ok");
    assert!(
        network.detail.contains(&subnet) && network.detail.contains(&az),
        "names the subnet `up` would use ({subnet} in {az}): {network:?}"
    );
    let ami = line(&lines, "ECS-optimized AMI");
    assert_eq!(ami.verdict, "ok");
    assert!(
        ami.detail.contains(&recommended_ami(&t.aws).await),
        "{ami:?}"
    );
    let itype = line(&lines, "instance type");
    assert_eq!(itype.verdict, "ok");
    assert!(itype.detail.contains("m4.xlarge"), "{itype:?}");
    // moto cannot answer these: unknown, with the reason, and not a failure.
    for check in ["on-demand vCPU quota", "IAM permissions"] {
        let l = line(&lines, check);
        assert_eq!(l.verdict, "unknown", "{l:?}");
        assert!(l.detail.len() > 10, "says why: {l:?}");
    }
    // Nothing was created.
    let snap = t.aws.snapshot(DEFAULT_STACK).await;
    assert_eq!(snap.leftovers(), Vec::<String>::new());
    assert!(
        !t.state_path(DEFAULT_STACK).exists(),
        "doctor wrote a state file"
    );

    // The text form: one line per check, exit 0.
    let text = t.cli().arg("doctor").run().await;
    text.assert_success();
    for check in CHECKS {
        assert!(text.stdout.contains(check), "{check} missing\n{text}");
    }
    assert!(!text.stdout.contains("PROBLEM"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_naming_the_problem_without_a_default_vpc() {
    let t = TestEnv::new().await;
    delete_default_vpc(&t.aws).await;
    let (out, report, lines) = doctor(&t, &[]).await;
    out.assert_code(1);
    assert_eq!(report["ok"], false, "{out}");
    let network = line(&lines, "VPC and subnet");
    assert_eq!(network.verdict, "problem", "{out}");
    assert!(
        network.detail.to_lowercase().contains("default"),
        "says the default VPC/subnet is missing: {network:?}"
    );
    assert!(
        network
            .fix
            .as_deref()
            .unwrap_or_default()
            .contains("--subnet-id"),
        "says what to do: {network:?}"
    );
    let problems: Vec<&str> = lines
        .iter()
        .filter(|l| l.verdict == "problem")
        .map(|l| l.check.as_str())
        .collect();
    assert_eq!(problems, ["VPC and subnet"], "{out}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("VPC and subnet"),
        "the error names the problem: {error}"
    );
    assert!(
        out.stderr.contains("VPC and subnet"),
        "stderr names the problem\n{out}"
    );

    // As text: exit 1, the PROBLEM line and its fix.
    let text = t.cli().arg("doctor").run().await;
    text.assert_code(1);
    let problem_line = text
        .stdout
        .lines()
        .find(|l| l.contains("VPC and subnet"))
        .unwrap_or_default();
    assert!(problem_line.contains("PROBLEM"), "{text}");
    assert!(text.stdout.contains("fix:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_naming_a_key_pair_that_does_not_exist() {
    let t = TestEnv::new().await;
    let (out, report, lines) = doctor(&t, &["--key-pair", "no-such-key"]).await;
    out.assert_code(1);
    assert_eq!(report["ok"], false, "{out}");
    let key = line(&lines, "key pair");
    assert_eq!(key.verdict, "problem", "{out}");
    assert!(key.detail.contains("no-such-key"), "names the key: {key:?}");
    let problems: Vec<&str> = lines
        .iter()
        .filter(|l| l.verdict == "problem")
        .map(|l| l.check.as_str())
        .collect();
    assert_eq!(problems, ["key pair"], "{out}");
    assert!(out.stderr.contains("no-such-key"), "stderr names it\n{out}");

    // With a key pair that exists: ok, exit 0.
    t.aws
        .ec2
        .create_key_pair()
        .key_name("my-key")
        .send()
        .await
        .expect("create_key_pair");
    let (out, _, lines) = doctor(&t, &["--key-pair", "my-key"]).await;
    out.assert_success();
    let key = line(&lines, "key pair");
    assert_eq!(key.verdict, "ok", "{out}");
    assert!(key.detail.contains("my-key"), "{key:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_fails_for_an_instance_type_or_subnet_that_does_not_exist() {
    let t = TestEnv::new().await;
    let (out, _, lines) = doctor(&t, &["--subnet-id", "subnet-0123456789abcdef0"]).await;
    out.assert_code(1);
    assert_eq!(line(&lines, "VPC and subnet").verdict, "problem", "{out}");

    let (out, _, lines) = doctor(&t, &["--ami", "ami-0123456789abcdef0"]).await;
    out.assert_code(1);
    let ami = line(&lines, "ECS-optimized AMI");
    assert_eq!(ami.verdict, "problem", "{out}");
    assert!(ami.detail.contains("ami-0123456789abcdef0"), "{ami:?}");
}
