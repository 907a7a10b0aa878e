//! `tunnel`: reaching a node's linkerd, admin, consul and linkerd-viz through ssh port
//! forwards instead of open ports.

use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, bail, Context as _, Result};

use super::Env;
use crate::cli::TunnelArgs;
use crate::nodes::{self, Node};

pub async fn run(args: &TunnelArgs, env: &Env) -> Result<()> {
    let ctx = env.connect().await?;
    let node = nodes::pick_node(&ctx).await?;
    let viz = super::dashboard::viz_node(&ctx).await?;
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

fn ssh_command(node: &Node, viz: Option<&Node>, key: Option<&Path>) -> Result<Vec<String>> {
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
