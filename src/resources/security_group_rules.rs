//! The inbound rules of security group `<stack>-sg`: the demo's ports from the allowed CIDRs,
//! and all traffic between members of the group. Apart from the group so that what needs
//! only the group's id (the consul server, the launch configuration) starts before them.
//! They go with the group: nothing of theirs to delete, list or show on its own.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Result};
use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, UserIdGroupPair};
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{missing_step, security_group, Name, Plan, Ready, Resource, Settings};
use crate::aws::{describe_error, error_code};
use crate::checkip;
use crate::context::Ctx;
use crate::ids::SecurityGroupId;
use crate::kinds::{Action, Item, ResourceKind, ResourceStatus};
use crate::stack::{Cidr, StackName};
use crate::state::{Resources, SecurityGroupRecord};

/// (port, what listens there)
pub const PORTS: [(i32, &str); 5] = [
    (22, "ssh"),
    (4140, "linkerd proxy"),
    (9990, "linkerd admin"),
    (3000, "linkerd-viz"),
    (8500, "consul HTTP API and UI"),
];

pub struct SecurityGroupRules;

impl Resource for SecurityGroupRules {
    fn name(&self) -> Name {
        Name::SecurityGroupRules
    }

    fn what(&self) -> &'static str {
        "security group rules"
    }

    fn command(&self) -> &'static str {
        "security-group"
    }

    fn is_recorded(&self, r: &Resources, _: &Settings) -> bool {
        r.security_group.is_some()
    }

    fn up<'a>(
        &'a self,
        cx: &'a Ctx,
        _: &'a Settings,
        ready: Ready<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            // The rules the group has now, read beside every other look-up: a group that is
            // not found yet is made by this run, with no rules.
            let (found, ready) = futures::join!(security_group::first_find(cx), ready);
            ready?;
            let found = found?;
            let record = cx
                .state
                .resources()
                .security_group
                .ok_or_else(|| missing_step("security group", "security-group"))?;
            let existing = found
                .iter()
                .find(|g| g.group_id() == Some(record.id.as_str()))
                .map(|g| g.ip_permissions())
                .unwrap_or_default();
            ensure_rules(cx, &record, existing).await
        }
        .boxed()
    }

    /// The security group's row names the rules it lacks (as a repair of the group).
    fn plan<'a>(&'a self, _: &'a Ctx, _: &'a Settings, _: &'a Plan) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn inventory(&self, _: &StackName, _: &Resources) -> Vec<Item> {
        Vec::new()
    }

    /// The rules go with the group.
    fn destroy<'a>(&'a self, _: &'a Ctx, _: Duration) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    fn discover<'a>(
        &'a self,
        _: &'a Ctx,
        _: &'a Settings,
        _: &'a Mutex<Resources>,
    ) -> BoxFuture<'a, Result<()>> {
        async { Ok(()) }.boxed()
    }

    /// The security group's line says which rules it lacks.
    fn status<'a>(&'a self, _: &'a Ctx, _: &'a Resources) -> BoxFuture<'a, Vec<ResourceStatus>> {
        async { Vec::new() }.boxed()
    }
}

/// The CIDRs to open the demo's ports to: `--allow-cidr`, else what the stack already uses,
/// else the caller's public IP.
pub async fn allowed_cidrs(cx: &Ctx, allow_cidrs: &[Cidr]) -> Result<Vec<Cidr>> {
    let cidrs = if !allow_cidrs.is_empty() {
        allow_cidrs.to_vec()
    } else if let Some(sg) = cx.state.resources().security_group {
        sg.allowed_cidrs
    } else {
        let mine = checkip::public_ip().await?;
        cx.out.progress(format!(
            "opening the demo's ports to your public IP only: {mine}"
        ));
        vec![mine]
    };
    for c in cidrs.iter().filter(|c| c.is_open_to_world()) {
        cx.out.warn(format!(
            "--allow-cidr {c} opens ssh, the linkerd admin and the consul API to the whole internet"
        ));
    }
    Ok(cidrs)
}

/// The inbound rules `up` would add to the group, in words.
pub fn missing_rules(
    group_id: &SecurityGroupId,
    existing: &[IpPermission],
    cidrs: &[Cidr],
) -> Vec<String> {
    let existing = existing_rules(existing);
    desired_rules(group_id, cidrs)
        .into_iter()
        .filter(|r| !existing.contains(r))
        .map(|r| match r {
            Rule::Port { port, cidr } => format!("tcp {port} from {cidr}"),
            Rule::AllFromGroup { group_id } => format!("all traffic from {group_id}"),
        })
        .collect()
}

/// Adds the inbound rules the group lacks (none on a warm run).
async fn ensure_rules(
    ctx: &Ctx,
    record: &SecurityGroupRecord,
    existing: &[IpPermission],
) -> Result<()> {
    let existing = existing_rules(existing);
    let missing: Vec<IpPermission> = desired_rules(&record.id, &record.allowed_cidrs)
        .iter()
        .filter(|r| !existing.contains(r))
        .map(permission)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let count = missing.len();
    let result = ctx
        .aws
        .ec2
        .authorize_security_group_ingress()
        .group_id(record.id.as_str())
        .set_ip_permissions(Some(missing))
        .send()
        .await;
    match result {
        Ok(_) => {}
        // A rule added by a concurrent run or a lost response: it is there, as wanted.
        Err(e) if error_code(&e) == Some("InvalidPermission.Duplicate") => {}
        Err(e) => {
            return Err(anyhow!(
                "adding inbound rules to security group {} ({}): {}",
                record.name,
                record.id,
                describe_error(&e)
            ))
        }
    }
    ctx.out.record(
        ResourceKind::SecurityGroupRules,
        &record.name,
        format!("{count} rule(s) added"),
        if existing.is_empty() {
            Action::Created
        } else {
            Action::Updated
        },
    );
    Ok(())
}

/// One inbound rule, in a form that compares equal whether built by us or read from AWS.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    Port { port: i32, cidr: String },
    AllFromGroup { group_id: String },
}

fn desired_rules(group_id: &SecurityGroupId, cidrs: &[Cidr]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = PORTS
        .iter()
        .flat_map(|(port, _)| {
            cidrs.iter().map(move |c| Rule::Port {
                port: *port,
                cidr: c.to_string(),
            })
        })
        .collect();
    rules.push(Rule::AllFromGroup {
        group_id: group_id.to_string(),
    });
    rules
}

fn existing_rules(perms: &[IpPermission]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for p in perms {
        match (p.ip_protocol(), p.from_port(), p.to_port()) {
            (Some("tcp"), Some(from), Some(to)) if from == to => {
                for r in p.ip_ranges() {
                    if let Some(c) = r.cidr_ip() {
                        rules.push(Rule::Port {
                            port: from,
                            cidr: c.to_owned(),
                        });
                    }
                }
                for r in p.ipv6_ranges() {
                    if let Some(c) = r.cidr_ipv6() {
                        rules.push(Rule::Port {
                            port: from,
                            cidr: c.to_owned(),
                        });
                    }
                }
            }
            (Some("-1"), _, _) => {
                for g in p.user_id_group_pairs() {
                    if let Some(id) = g.group_id() {
                        rules.push(Rule::AllFromGroup {
                            group_id: id.to_owned(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    rules
}

fn permission(rule: &Rule) -> IpPermission {
    match rule {
        Rule::Port { port, cidr } => {
            let what = PORTS
                .iter()
                .find(|(p, _)| p == port)
                .map_or("", |(_, w)| *w);
            let description = format!("l5d-ecs: {what}");
            let b = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(*port)
                .to_port(*port);
            if cidr.contains(':') {
                b.ipv6_ranges(
                    Ipv6Range::builder()
                        .cidr_ipv6(cidr)
                        .description(description)
                        .build(),
                )
                .build()
            } else {
                b.ip_ranges(
                    IpRange::builder()
                        .cidr_ip(cidr)
                        .description(description)
                        .build(),
                )
                .build()
            }
        }
        Rule::AllFromGroup { group_id } => IpPermission::builder()
            .ip_protocol("-1")
            .user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(group_id)
                    .description("l5d-ecs: nodes talk to each other on every port")
                    .build(),
            )
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_back_compare_equal_to_rules_asked_for() {
        let id = SecurityGroupId::from("sg-1");
        let cidrs: Vec<Cidr> = vec![
            "203.0.113.7/32".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let wanted = desired_rules(&id, &cidrs);
        assert_eq!(wanted.len(), 11);
        let perms: Vec<IpPermission> = wanted.iter().map(permission).collect();
        let mut back = existing_rules(&perms);
        let mut wanted = wanted;
        back.sort();
        wanted.sort();
        assert_eq!(back, wanted);
    }

    #[test]
    fn a_group_with_every_rule_lacks_none() {
        let id = SecurityGroupId::from("sg-1");
        let cidrs: Vec<Cidr> = vec!["203.0.113.7/32".parse().unwrap()];
        let perms: Vec<IpPermission> = desired_rules(&id, &cidrs).iter().map(permission).collect();
        assert!(missing_rules(&id, &perms, &cidrs).is_empty());
        let missing = missing_rules(&id, &perms[1..], &cidrs);
        assert_eq!(missing, vec!["tcp 22 from 203.0.113.7/32".to_owned()]);
    }
}
