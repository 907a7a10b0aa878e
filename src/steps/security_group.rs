//! Security group `<stack>-sg`: the demo's ports from the allowed CIDRs, and all traffic
//! between members of the group.

use std::time::Duration;

use anyhow::{anyhow, Context as _, Result};
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, ResourceType, SecurityGroup, UserIdGroupPair,
};

use crate::aws::{
    classify, create_once, describe_error, ec2_filter, error_code, no_retry, poll_with,
    AwsResultExt, Backoff, Poll,
};
use crate::context::Ctx;
use crate::ids::{SecurityGroupId, VpcId};
use crate::output::{Action, ResourceKind};
use crate::stack::Cidr;
use crate::state::{Network, SecurityGroupRecord};

/// Description as in the guide.
pub const DESCRIPTION: &str = "Linkerd Demo";

/// (port, what listens there)
pub const PORTS: [(i32, &str); 5] = [
    (22, "ssh"),
    (4140, "linkerd proxy"),
    (9990, "linkerd admin"),
    (3000, "linkerd-viz"),
    (8500, "consul HTTP API and UI"),
];

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

/// Groups named `<stack>-sg`, in any VPC (the network may not be known yet).
pub async fn find(ctx: &Ctx) -> Result<Vec<SecurityGroup>> {
    let name = ctx.stack.security_group();
    let found = ctx
        .aws
        .ec2
        .describe_security_groups()
        .filters(ec2_filter("group-name", &[&name]))
        .send()
        .await
        .aws(format!("looking up security group {name}"))?;
    Ok(found.security_groups().to_vec())
}

/// The stack's group in the VPC, or an error if a group of that name there is not ours.
pub fn ours_in(ctx: &Ctx, found: &[SecurityGroup], vpc: &VpcId) -> Result<Option<SecurityGroup>> {
    let Some(group) = found.iter().find(|g| g.vpc_id() == Some(vpc.as_str())) else {
        return Ok(None);
    };
    if !super::ec2_has_stack_tag(group.tags(), &ctx.stack) {
        return Err(super::not_ours(
            "security group",
            &ctx.stack.security_group(),
            group.group_id().unwrap_or_default(),
            &ctx.stack,
        ));
    }
    Ok(Some(group.clone()))
}

/// The group with its inbound rules, as `up` wants it.
pub async fn ensure(ctx: &Ctx, network: &Network, cidrs: &[Cidr]) -> Result<SecurityGroupRecord> {
    let found = find(ctx).await?;
    let (record, existing) = ensure_group(ctx, &found, network, cidrs).await?;
    ensure_rules(ctx, &record, &existing).await?;
    Ok(record)
}

/// The group itself, created if missing (without its rules, so that what needs only its id
/// can start). Returns the rules it has now.
pub async fn ensure_group(
    ctx: &Ctx,
    found: &[SecurityGroup],
    network: &Network,
    cidrs: &[Cidr],
) -> Result<(SecurityGroupRecord, Vec<IpPermission>)> {
    let name = ctx.stack.security_group();
    let (id, existing, action) = match ours_in(ctx, found, &network.vpc_id)? {
        Some(group) => (
            SecurityGroupId::from(group.group_id().unwrap_or_default()),
            group.ip_permissions().to_vec(),
            Action::Kept,
        ),
        None => {
            let id = create_once(
                &format!("creating security group {name}"),
                || async {
                    ctx.aws
                        .ec2
                        .create_security_group()
                        .group_name(&name)
                        .description(DESCRIPTION)
                        .vpc_id(network.vpc_id.as_str())
                        .tag_specifications(super::ec2_tag_spec(
                            &ctx.stack,
                            &name,
                            ResourceType::SecurityGroup,
                        ))
                        .customize()
                        .config_override(no_retry!(aws_sdk_ec2))
                        .send()
                        .await
                        .map(|out| out.group_id().unwrap_or_default().to_owned())
                        .map_err(classify)
                },
                || async {
                    let found = find(ctx).await?;
                    Ok(ours_in(ctx, &found, &network.vpc_id)?
                        .and_then(|g| g.group_id().map(str::to_owned)))
                },
            )
            .await?;
            if id.is_empty() {
                return Err(anyhow!("CreateSecurityGroup returned no group id"));
            }
            (SecurityGroupId(id), Vec::new(), Action::Created)
        }
    };
    let record = SecurityGroupRecord {
        id: id.clone(),
        name: name.clone(),
        vpc_id: network.vpc_id.clone(),
        allowed_cidrs: cidrs.to_vec(),
    };
    ctx.state
        .update(|s| s.resources.security_group = Some(record.clone()))?;
    ctx.out
        .record(ResourceKind::SecurityGroup, &name, id.as_str(), action);
    Ok((record, existing))
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
pub async fn ensure_rules(
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

/// Deletes the group, retrying while AWS still sees it in use (the network interfaces of
/// terminated instances linger for minutes).
pub async fn destroy(ctx: &Ctx, record: &SecurityGroupRecord, timeout: Duration) -> Result<()> {
    let what = format!(
        "security group {} ({}) to be deletable",
        record.name, record.id
    );
    poll_with(&what, timeout, Backoff::DEFAULT, Some(&ctx.out), || async {
        let result = ctx
            .aws
            .ec2
            .delete_security_group()
            .group_id(record.id.as_str())
            .send()
            .await;
        match result {
            Ok(_) => Ok(Poll::Ready(())),
            Err(e) if error_code(&e) == Some("InvalidGroup.NotFound") => Ok(Poll::Ready(())),
            Err(e) if error_code(&e) == Some("DependencyViolation") => {
                Ok(Poll::Pending(describe_error(&e)))
            }
            Err(e) => Err(anyhow!("{}", describe_error(&e))),
        }
    })
    .await
    .with_context(|| format!("deleting security group {} ({})", record.name, record.id))?;
    ctx.state.update(|s| s.resources.security_group = None)?;
    ctx.out.record(
        ResourceKind::SecurityGroup,
        &record.name,
        record.id.as_str(),
        Action::Deleted,
    );
    Ok(())
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
}
