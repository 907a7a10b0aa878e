//! `doctor`: a preflight checklist before anything is created. Each line is ok, problem or
//! unknown (the account or endpoint cannot answer), with how to fix a problem.

mod checks;

use serde::Serialize;

use super::Env;
use crate::aws::{describe_error, Aws};
use crate::cli::UpArgs;
use crate::output::Lines;
use crate::resources::Settings;
use crate::state::InstanceSettings;
use checks::{ami, instance_type, key_pair, launch_configurations, permissions, vcpu_quota};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    Problem,
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct DoctorLine {
    pub check: String,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl std::fmt::Display for DoctorLine {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = match self.verdict {
            Verdict::Ok => "ok     ",
            Verdict::Problem => "PROBLEM",
            Verdict::Unknown => "unknown",
        };
        writeln!(out, "{mark}  {:<28} {}", self.check, self.detail)?;
        if let Some(fix) = &self.fix {
            writeln!(out, "         fix: {fix}")?;
        }
        Ok(())
    }
}

fn line(check: &str, verdict: Verdict, detail: impl Into<String>, fix: Option<&str>) -> DoctorLine {
    DoctorLine {
        check: check.to_owned(),
        verdict,
        detail: detail.into(),
        fix: fix.map(str::to_owned),
    }
}

/// Runs every check (all at once where they do not depend on each other).
pub async fn run(args: &UpArgs, env: &Env) -> anyhow::Result<()> {
    // Reads the state file for what the last `up` asked, without locking it: doctor
    // changes nothing.
    let s = Settings::resolve(args.flags(), env.recorded().await?.as_ref())?;
    let aws = Aws::connect(&env.global, Some(crate::context::progress_notice(&env.out))).await?;
    env.out.set_region(&aws.region);
    let lines = doctor(&aws, args, &s.instance, s.sizes.max).await;
    let failed = failure(&lines);
    env.out.section("doctor", &Lines(lines));
    failed.map_or(Ok(()), Err)
}

async fn doctor(
    aws: &Aws,
    args: &UpArgs,
    instance: &InstanceSettings,
    max_nodes: u32,
) -> Vec<DoctorLine> {
    let mut lines = vec![line("region", Verdict::Ok, aws.region.clone(), None)];
    let identity = async {
        match aws.sts.get_caller_identity().send().await {
            Ok(out) => (
                line(
                    "credentials",
                    Verdict::Ok,
                    format!(
                        "account {} as {}",
                        out.account().unwrap_or("?"),
                        out.arn().unwrap_or("?")
                    ),
                    None,
                ),
                out.arn().map(str::to_owned),
            ),
            Err(e) => (
                line(
                    "credentials",
                    Verdict::Problem,
                    describe_error(&e),
                    Some("configure credentials for this account (--profile, AWS_PROFILE, aws sso login)"),
                ),
                None,
            ),
        }
    };
    let ((identity_line, caller_arn), network, key, ami, lc, quota) = futures::join!(
        identity,
        network(aws, args),
        key_pair(aws, instance),
        ami(aws, instance),
        launch_configurations(aws),
        vcpu_quota(aws),
    );
    lines.push(identity_line);
    let az = match &network {
        Ok((l, az)) => {
            lines.push(l.clone());
            az.clone()
        }
        Err(l) => {
            lines.push(l.clone());
            None
        }
    };
    if let Some(k) = key {
        lines.push(k);
    }
    lines.push(ami);
    let (type_line, vcpus) = instance_type(aws, &instance.instance_type, az.as_deref()).await;
    lines.push(type_line);
    lines.push(match (quota, vcpus) {
        (Ok(limit), Some(per)) => {
            let needed = per * (1 + max_nodes as i32);
            if f64::from(needed) <= limit {
                line(
                    "on-demand vCPU quota",
                    Verdict::Ok,
                    format!("{needed} vCPUs needed (consul server + --max {max_nodes} nodes), quota {limit}"),
                    None,
                )
            } else {
                line(
                    "on-demand vCPU quota",
                    Verdict::Problem,
                    format!("{needed} vCPUs needed (consul server + --max {max_nodes} nodes), quota {limit}"),
                    Some("ask for more in Service Quotas (EC2, Running On-Demand Standard instances), or use a smaller --instance-type or --max"),
                )
            }
        }
        (Ok(limit), None) => line(
            "on-demand vCPU quota",
            Verdict::Unknown,
            format!("quota {limit}, but the vCPUs of {} are unknown", instance.instance_type),
            None,
        ),
        (Err(why), _) => line("on-demand vCPU quota", Verdict::Unknown, why, None),
    });
    lines.push(lc);
    lines.push(permissions(aws, caller_arn.as_deref()).await);
    lines
}

async fn network(aws: &Aws, args: &UpArgs) -> Result<(DoctorLine, Option<String>), DoctorLine> {
    let mut request = aws.ec2.describe_subnets();
    if args.network.subnet_ids.is_empty() {
        request = request.filters(crate::aws::ec2_filter("default-for-az", &["true"]));
    } else {
        request = request.set_subnet_ids(Some(args.network.subnet_ids.clone()));
    }
    match request.send().await {
        Ok(out) => {
            let mut subnets: Vec<_> = out
                .subnets()
                .iter()
                .filter(|s| {
                    args.network
                        .availability_zone
                        .as_deref()
                        .is_none_or(|az| s.availability_zone() == Some(az))
                })
                .collect();
            subnets.sort_by_key(|s| s.availability_zone().map(str::to_owned));
            match subnets.first() {
                Some(s) => Ok((
                    line(
                        "VPC and subnet",
                        Verdict::Ok,
                        format!(
                            "{} {} in {}",
                            s.vpc_id().unwrap_or("?"),
                            s.subnet_id().unwrap_or("?"),
                            s.availability_zone().unwrap_or("?")
                        ),
                        None,
                    ),
                    s.availability_zone().map(str::to_owned),
                )),
                None if args.network.subnet_ids.is_empty() => Err(line(
                    "VPC and subnet",
                    Verdict::Problem,
                    format!(
                        "no default subnet{} (the region has no default VPC?)",
                        args.network
                            .availability_zone
                            .as_deref()
                            .map(|az| format!(" in {az}"))
                            .unwrap_or_default()
                    ),
                    Some("pass --subnet-id ID (repeatable), or create a default VPC (`aws ec2 create-default-vpc`)"),
                )),
                None => Err(line(
                    "VPC and subnet",
                    Verdict::Problem,
                    "the given subnets were not found",
                    Some("check the --subnet-id values"),
                )),
            }
        }
        Err(e) => Err(line(
            "VPC and subnet",
            Verdict::Problem,
            describe_error(&e),
            Some("check the --subnet-id values and the region"),
        )),
    }
}

fn failure(lines: &[DoctorLine]) -> Option<anyhow::Error> {
    let problems: Vec<String> = lines
        .iter()
        .filter(|l| l.verdict == Verdict::Problem)
        .map(|l| format!("{}: {}", l.check, l.detail))
        .collect();
    (!problems.is_empty()).then(|| {
        anyhow::anyhow!(
            "{} problem(s) would make `up` fail:\n  {}",
            problems.len(),
            problems.join("\n  ")
        )
    })
}
