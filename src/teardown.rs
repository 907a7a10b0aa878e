//! `down`: everything the state file records, removed in reverse dependency order. A failed
//! deletion does not stop the others; what is left is listed at the end.

use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use anyhow::{anyhow, Result};

use crate::cli::{App, DownArgs};
use crate::context::Ctx;
use crate::deploy;
use crate::output::ResourceKind;
use crate::stack::usage;
use crate::state::Resources;
use crate::steps::{
    asg, cluster, consul_server, daemons, launch_config, log_group, role_policy, security_group,
    task_definitions,
};

/// Every resource the state file records, for the confirmation prompt and the final list.
pub fn inventory(r: &Resources) -> Vec<(ResourceKind, String, String)> {
    let mut items = Vec::new();
    for app in r.apps.values() {
        for t in &app.tasks {
            items.push((ResourceKind::Task, app.family.clone(), t.to_string()));
        }
    }
    for s in r.daemons.values() {
        items.push((
            ResourceKind::DaemonService,
            s.name.clone(),
            s.arn.to_string(),
        ));
    }
    if let Some(a) = &r.asg {
        items.push((
            ResourceKind::AutoScalingGroup,
            a.name.clone(),
            a.name.clone(),
        ));
    }
    if let Some(c) = &r.consul_server {
        items.push((
            ResourceKind::ConsulServer,
            String::new(),
            c.instance_id.to_string(),
        ));
    }
    if let Some(l) = &r.launch_config {
        let kind = match l.kind {
            crate::state::LaunchConfigKind::LaunchConfiguration => {
                ResourceKind::LaunchConfiguration
            }
            crate::state::LaunchConfigKind::LaunchTemplate => ResourceKind::LaunchTemplate,
        };
        let id = l
            .launch_template_id
            .as_ref()
            .map_or(l.name.clone(), |i| i.to_string());
        items.push((kind, l.name.clone(), id));
    }
    for t in r.task_definitions.values() {
        items.push((
            ResourceKind::TaskDefinition,
            t.family.clone(),
            t.arn.to_string(),
        ));
    }
    if let Some(c) = &r.cluster {
        items.push((ResourceKind::Cluster, c.name.clone(), c.arn.to_string()));
    }
    if let Some(role) = &r.instance_role {
        items.push((
            ResourceKind::RolePolicy,
            role.policy_name.clone(),
            role.role_name.clone(),
        ));
    }
    if let Some(sg) = &r.security_group {
        items.push((
            ResourceKind::SecurityGroup,
            sg.name.clone(),
            sg.id.to_string(),
        ));
    }
    items
}

/// Asks on a terminal; refuses (exit 2) without one. Runs before any AWS call.
pub fn confirm(resources: &Resources, stack: &str, args: &DownArgs) -> Result<()> {
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "down would delete the resources of stack {stack}; not on a terminal, so add --yes \
             to confirm"
        )));
    }
    let mut err = std::io::stderr().lock();
    writeln!(err, "This deletes, in stack {stack}:")?;
    for (kind, name, id) in inventory(resources) {
        writeln!(err, "  {:<21} {name} {id}", kind.label())?;
    }
    write!(err, "Delete them? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(usage("not confirmed; nothing was deleted"))
    }
}

#[derive(Default)]
struct Outcome(Mutex<Vec<String>>);

impl Outcome {
    /// Runs one deletion; `false` if it failed (the error is kept for the final list).
    async fn run(&self, work: impl Future<Output = Result<()>>) -> bool {
        match work.await {
            Ok(()) => true,
            Err(e) => {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{e:#}"));
                false
            }
        }
    }
    fn skipped(&self, what: &str, because: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{what}: not tried, {because} is still there"));
        false
    }
}

pub async fn down(ctx: &Ctx, args: &DownArgs) -> Result<()> {
    let r = ctx.state.resources();
    let timeout = args.timeout.0;
    let outcome = Outcome::default();
    let o = &outcome;

    // Nothing else may go while the nodes and services that use it are still there.
    let services = async {
        let mut ok = true;
        for app in [App::HelloWorld, App::LinkerdViz] {
            if r.apps.contains_key(app.name()) {
                ok &= o.run(deploy::undeploy(ctx, app)).await;
            }
        }
        if let Some(c) = &r.cluster {
            for s in r.daemons.values() {
                ok &= o.run(daemons::destroy(ctx, &c.name, s)).await;
            }
        } else if !r.daemons.is_empty() {
            ok = o
                .run(async {
                    Err(anyhow!(
                        "the state file lists daemon services but no cluster"
                    ))
                })
                .await;
        }
        ok
    };
    let nodes = async {
        match &r.asg {
            Some(a) => o.run(asg::destroy(ctx, a, timeout)).await,
            None => true,
        }
    };
    let consul = async {
        match &r.consul_server {
            Some(c) => o.run(consul_server::destroy(ctx, c, timeout)).await,
            None => true,
        }
    };
    let (services_gone, nodes_gone, consul_gone) = futures::join!(services, nodes, consul);

    let launch = async {
        match &r.launch_config {
            Some(_) if !nodes_gone => o.skipped("launch configuration", "the auto scaling group"),
            Some(l) => o.run(launch_config::destroy(ctx, l, timeout)).await,
            None => true,
        }
    };
    // The families are independent: deregistered at once.
    let families = async {
        futures::future::join_all(
            r.task_definitions
                .keys()
                .map(|family| o.run(task_definitions::destroy(ctx, family))),
        )
        .await
        .into_iter()
        .all(|ok| ok)
    };
    let cluster = async {
        match &r.cluster {
            Some(_) if !services_gone => o.skipped("cluster", "a daemon service"),
            Some(_) if !nodes_gone => o.skipped("cluster", "the auto scaling group"),
            Some(c) => o.run(cluster::destroy(ctx, c, timeout)).await,
            None => true,
        }
    };
    let role = async {
        match &r.instance_role {
            Some(_) if !nodes_gone => o.skipped("role policy", "the auto scaling group"),
            Some(role) => o.run(role_policy::destroy(ctx, role)).await,
            None => true,
        }
    };
    let sg = async {
        match &r.security_group {
            Some(_) if !nodes_gone => o.skipped("security group", "the auto scaling group"),
            Some(_) if !consul_gone => o.skipped("security group", "the consul server"),
            Some(sg) => o.run(security_group::destroy(ctx, sg, timeout)).await,
            None => true,
        }
    };
    let logs = async {
        match &r.log_group {
            Some(lg) => o.run(log_group::destroy(ctx, lg)).await,
            None => true,
        }
    };
    futures::join!(launch, families, cluster, role, sg, logs);

    let left = ctx.state.resources();
    if left.is_empty() {
        ctx.state.remove()?;
        return Ok(());
    }
    let errors = outcome.0.into_inner().unwrap_or_else(|p| p.into_inner());
    for (kind, name, id) in inventory(&left) {
        let why = errors
            .iter()
            .find(|e| (!name.is_empty() && e.contains(&name)) || e.contains(&id))
            .cloned()
            .unwrap_or_else(|| "see the errors above".to_owned());
        ctx.out.leftover(kind, name, id, why);
    }
    Err(anyhow!(
        "down did not finish; {} resource(s) are still there and remain in the state file {}:\n  {}",
        inventory(&left).len(),
        ctx.state.path().display(),
        errors.join("\n  ")
    ))
}
