//! Finding the stack's nodes and following task -> container instance -> EC2 instance, as the
//! guide does by hand to find where linkerd-viz runs.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use aws_sdk_ec2::types::Instance;
use aws_sdk_ecs::types::{ContainerInstance, ContainerInstanceStatus};

use crate::aws::{describe_error, ec2_filter, error_code, AwsResultExt};
use crate::context::Ctx;
use crate::ids::InstanceId;
use crate::stack::STACK_TAG;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Node {
    pub instance_id: InstanceId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_dns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<String>,
    pub state: String,
}

impl Node {
    fn from_instance(i: &Instance) -> Option<Self> {
        let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        Some(Self {
            instance_id: InstanceId::from(i.instance_id()?),
            private_ip: non_empty(i.private_ip_address()),
            public_dns: non_empty(i.public_dns_name()),
            public_ip: non_empty(i.public_ip_address()),
            state: i
                .state()
                .and_then(|s| s.name())
                .map_or("unknown", |n| n.as_str())
                .to_owned(),
        })
    }

    /// How to reach the node from here: public DNS name, else public IP, else private IP.
    pub fn host(&self) -> Option<&str> {
        self.public_dns
            .as_deref()
            .or(self.public_ip.as_deref())
            .or(self.private_ip.as_deref())
    }
}

/// Running instances tagged Name=`<stack>-ecs`, from every page.
pub async fn running_nodes(ctx: &Ctx) -> Result<Vec<Node>> {
    let name = ctx.stack.node_tag();
    let mut pages = ctx
        .aws
        .ec2
        .describe_instances()
        .filters(ec2_filter("tag:Name", &[&name]))
        .filters(ec2_filter(
            &format!("tag:{STACK_TAG}"),
            &[ctx.stack.as_str()],
        ))
        .filters(ec2_filter("instance-state-name", &["running"]))
        .into_paginator()
        .send();
    let mut nodes = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("looking up the running nodes tagged Name={name}"))?;
        nodes.extend(
            page.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(Node::from_instance),
        );
    }
    nodes.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    Ok(nodes)
}

/// Of `instances`, the running nodes (tagged Name=`<stack>-ecs`).
pub fn running_nodes_among(ctx: &Ctx, instances: &[Instance]) -> Vec<Node> {
    let name = ctx.stack.node_tag();
    let mut nodes: Vec<Node> = instances
        .iter()
        .filter(|i| {
            i.tags()
                .iter()
                .any(|t| t.key() == Some("Name") && t.value() == Some(name.as_str()))
        })
        .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("running"))
        .filter_map(Node::from_instance)
        .collect();
    nodes.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    nodes
}

/// A running node to talk to (one with a public address if there is one), or an error saying
/// there is none.
pub async fn pick_node(ctx: &Ctx) -> Result<Node> {
    let nodes = running_nodes(ctx).await?;
    let public = nodes
        .iter()
        .find(|n| n.public_dns.is_some() || n.public_ip.is_some());
    public
        .or_else(|| nodes.iter().find(|n| n.host().is_some()))
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "no running instance tagged Name={} in {}; run `l5d-ecs up` (see `l5d-ecs status`)",
                ctx.stack.node_tag(),
                ctx.aws.region
            )
        })
}

/// The instances `ids`, from every page (DescribeInstances with instance ids cannot take
/// MaxResults, but may still page).
pub async fn describe_nodes(ctx: &Ctx, ids: &[String]) -> Result<BTreeMap<String, Node>> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut pages = ctx
        .aws
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .into_paginator()
        .send();
    let mut nodes = BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(format!("describing instances {}", ids.join(", ")))?;
        nodes.extend(
            page.reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(Node::from_instance)
                .map(|n| (n.instance_id.to_string(), n)),
        );
    }
    Ok(nodes)
}

/// The ARNs of the cluster's container instances (of `status`, else ACTIVE and DRAINING, as
/// ECS lists them), from every page. `None`: there is no such cluster.
pub async fn list_container_instances(
    ctx: &Ctx,
    cluster: &str,
    status: Option<ContainerInstanceStatus>,
) -> Result<Option<Vec<String>>> {
    let mut pages = ctx
        .aws
        .ecs
        .list_container_instances()
        .cluster(cluster)
        .set_status(status)
        .into_paginator()
        .send();
    let mut arns = Vec::new();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => arns.extend(page.container_instance_arns().iter().cloned()),
            Err(e) if error_code(&e) == Some("ClusterNotFoundException") => return Ok(None),
            Err(e) => {
                return Err(anyhow!(
                    "listing the container instances of {cluster} (ecs:ListContainerInstances): {}",
                    describe_error(&e)
                ))
            }
        }
    }
    Ok(Some(arns))
}

/// DescribeContainerInstances takes at most 100 container instances a call.
const DESCRIBE_CONTAINER_INSTANCES_MAX: usize = 100;

/// The container instances `arns`, described in batches of 100, the batches at once.
pub async fn describe_container_instances(
    ctx: &Ctx,
    cluster: &str,
    arns: &[String],
) -> Result<Vec<ContainerInstance>> {
    let batches = arns
        .chunks(DESCRIBE_CONTAINER_INSTANCES_MAX)
        .map(|chunk| async move {
            ctx.aws
                .ecs
                .describe_container_instances()
                .cluster(cluster)
                .set_container_instances(Some(chunk.to_vec()))
                .send()
                .await
                .aws(format!(
                    "describing container instances of {cluster} (ecs:DescribeContainerInstances)"
                ))
                .map(|out| out.container_instances().to_vec())
        });
    let described = futures::future::try_join_all(batches).await?;
    Ok(described.into_iter().flatten().collect())
}

/// container instance ARN -> EC2 instance id, for the given container instances.
pub async fn container_instance_hosts(
    ctx: &Ctx,
    cluster: &str,
    arns: &[String],
) -> Result<BTreeMap<String, String>> {
    Ok(describe_container_instances(ctx, cluster, arns)
        .await?
        .iter()
        .filter_map(|c| {
            Some((
                c.container_instance_arn()?.to_owned(),
                c.ec2_instance_id()?.to_owned(),
            ))
        })
        .collect())
}

/// What runs in a cluster, read once: its container instances (ACTIVE and DRAINING) and
/// its tasks meant to run, described.
#[derive(Debug, Clone, Default)]
pub struct ClusterLook {
    pub container_instances: Vec<ContainerInstance>,
    pub running: Vec<aws_sdk_ecs::types::Task>,
}

impl ClusterLook {
    /// ACTIVE container instance ARN -> EC2 instance id.
    pub fn active_hosts(&self) -> BTreeMap<String, String> {
        self.container_instances
            .iter()
            .filter(|c| c.status() == Some("ACTIVE"))
            .filter_map(|c| {
                Some((
                    c.container_instance_arn()?.to_owned(),
                    c.ec2_instance_id()?.to_owned(),
                ))
            })
            .collect()
    }
}

/// The cluster's [`ClusterLook`], made once per run: for a command that only reads (`status`
/// asks for it from its node table and from each daemon's line, at 60 nodes hundreds of
/// tasks each time). A command that changes the cluster must look again.
pub async fn cluster_look<'a>(ctx: &'a Ctx, cluster: &str) -> Result<&'a ClusterLook> {
    ctx.cluster_look
        .get_or_try_init(|| async {
            let container_instances = async {
                let arns = list_container_instances(ctx, cluster, None)
                    .await?
                    .unwrap_or_default();
                describe_container_instances(ctx, cluster, &arns).await
            };
            let running = async {
                let listing = ctx
                    .aws
                    .ecs
                    .list_tasks()
                    .cluster(cluster)
                    .desired_status(aws_sdk_ecs::types::DesiredStatus::Running);
                let arns =
                    crate::tasks::list(listing, &format!("the running tasks of {cluster}")).await?;
                crate::tasks::describe(ctx, cluster, &arns).await
            };
            let (container_instances, running) = futures::join!(container_instances, running);
            Ok(ClusterLook {
                container_instances: container_instances?,
                running: running?,
            })
        })
        .await
}

/// task ARN -> the node it runs on, following task -> container instance -> EC2 instance.
pub async fn task_nodes(
    ctx: &Ctx,
    cluster: &str,
    tasks: &[aws_sdk_ecs::types::Task],
) -> Result<BTreeMap<String, Node>> {
    let mut container_instances: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.container_instance_arn().map(str::to_owned))
        .collect();
    container_instances.sort();
    container_instances.dedup();
    let hosts = container_instance_hosts(ctx, cluster, &container_instances).await?;
    let instance_ids: Vec<String> = hosts.values().cloned().collect();
    let nodes = describe_nodes(ctx, &instance_ids).await?;
    Ok(tasks
        .iter()
        .filter_map(|t| {
            let ec2 = hosts.get(t.container_instance_arn()?)?;
            Some((t.task_arn()?.to_owned(), nodes.get(ec2)?.clone()))
        })
        .collect())
}

/// The short id at the end of a task ARN.
pub fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}
