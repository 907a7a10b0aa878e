//! `dashboard`: the address of one of the demo's UIs, opened in a browser unless `--print`.

use std::process::Command;

use anyhow::{anyhow, Result};

use super::Env;
use crate::cli::{Dashboard, DashboardArgs};
use crate::context::Ctx;
use crate::nodes::{self, Node};

/// The node that runs linkerd-viz, if it is deployed.
pub(super) async fn viz_node(ctx: &Ctx) -> Result<Option<Node>> {
    let report = super::status::report(ctx).await?;
    let family = ctx.stack.family("linkerd-viz");
    let Some(id) = report
        .nodes
        .iter()
        .find(|n| n.tasks.contains_key(&family))
        .map(|n| n.instance_id.clone())
    else {
        return Ok(None);
    };
    Ok(nodes::describe_nodes(ctx, &[id])
        .await?
        .into_values()
        .next())
}

pub async fn run(args: &DashboardArgs, env: &Env) -> Result<()> {
    let cx = env.connect().await?;
    dashboard(&cx, args).await
}

async fn dashboard(ctx: &Ctx, args: &DashboardArgs) -> Result<()> {
    let (name, url) = match args.which {
        Dashboard::Linkerd => {
            let node = nodes::pick_node(ctx).await?;
            (
                "linkerd admin",
                format!("http://{}:9990", node.host().unwrap_or_default()),
            )
        }
        Dashboard::Consul => {
            let node = nodes::pick_node(ctx).await?;
            (
                "consul UI",
                format!("http://{}:8500/ui", node.host().unwrap_or_default()),
            )
        }
        Dashboard::Viz => {
            let node = viz_node(ctx).await?.ok_or_else(|| {
                anyhow!("linkerd-viz is not running: `l5d-ecs deploy linkerd-viz` first")
            })?;
            (
                "linkerd-viz",
                format!("http://{}:3000", node.host().unwrap_or_default()),
            )
        }
    };
    ctx.out.address(name, url.clone());
    if !args.print {
        open_browser(&url, &ctx.out);
    }
    Ok(())
}

fn open_browser(url: &str, out: &crate::output::Output) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match Command::new(opener).arg(url).status() {
        Ok(s) if s.success() => {}
        _ => out.warn(format!(
            "could not open a browser ({opener}); open {url} yourself"
        )),
    }
}
