//! `dashboard` and `tunnel`: reaching the demo's UIs, through open ports or ssh forwards.

use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context as _, Result};

use crate::cli::{Dashboard, DashboardArgs, TunnelArgs};
use crate::context::Ctx;
use crate::nodes::{self, Node};
use crate::status;

/// The node that runs linkerd-viz, if it is deployed.
async fn viz_node(ctx: &Ctx) -> Result<Option<Node>> {
    let report = status::status(ctx).await?;
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

pub async fn dashboard(ctx: &Ctx, args: &DashboardArgs) -> Result<()> {
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

/// The ssh command that forwards the demo's ports from one node (and the viz node) to here.
pub fn ssh_command(node: &Node, viz: Option<&Node>, key: Option<&Path>) -> Result<Vec<String>> {
    let host = node
        .public_dns
        .as_deref()
        .or(node.public_ip.as_deref())
        .ok_or_else(|| anyhow!("node {} has no public address to ssh to", node.instance_id))?;
    let target = |n: &Node| {
        n.private_ip
            .clone()
            .unwrap_or_else(|| "localhost".to_owned())
    };
    let mut cmd = vec!["ssh".to_owned(), "-N".to_owned()];
    if let Some(key) = key {
        cmd.push("-i".to_owned());
        cmd.push(key.display().to_string());
    }
    for port in [4140, 9990, 8500] {
        cmd.push("-L".to_owned());
        cmd.push(format!("{port}:{}:{port}", target(node)));
    }
    if let Some(viz) = viz {
        cmd.push("-L".to_owned());
        cmd.push(format!("3000:{}:3000", target(viz)));
    }
    cmd.push(format!("ec2-user@{host}"));
    Ok(cmd)
}

pub async fn tunnel(ctx: &Ctx, args: &TunnelArgs) -> Result<()> {
    let node = nodes::pick_node(ctx).await?;
    let viz = viz_node(ctx).await?;
    let cmd = ssh_command(&node, viz.as_ref(), args.key.as_deref())?;
    let line = cmd.join(" ");
    ctx.out.address("ssh", line.clone());
    if args.print {
        return Ok(());
    }
    ctx.out.progress(format!(
        "{line}\nforwarding localhost:4140, :9990, :8500 (and :3000) until interrupted"
    ));
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .with_context(|| format!("running {line}"))?;
    if !status.success() {
        bail!("ssh exited with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::InstanceId;

    #[test]
    fn ssh_forwards_each_port_to_the_nodes_private_ip() {
        let node = Node {
            instance_id: InstanceId::from("i-1"),
            private_ip: Some("10.0.0.5".into()),
            public_dns: Some("ec2-1.example".into()),
            public_ip: None,
            state: "running".into(),
        };
        let cmd = ssh_command(&node, Some(&node), Some(Path::new("k.pem")))
            .unwrap()
            .join(" ");
        assert_eq!(
            cmd,
            "ssh -N -i k.pem -L 4140:10.0.0.5:4140 -L 9990:10.0.0.5:9990 -L 8500:10.0.0.5:8500 \
             -L 3000:10.0.0.5:3000 ec2-user@ec2-1.example"
        );
    }
}
