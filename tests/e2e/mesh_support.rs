//! Support for `mesh`: the node stand-in (`tests/standins/node.py`) as a child process,
//! a CloudWatch Logs client on moto, and read-backs of the demo apps' tasks through the SDK.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::{Credentials, Region};

use crate::support::{arn_family, http_call, Aws, DEFAULT_STACK};

/// The Python of the project's virtual environment (scripts/test installs moto there), or
/// `L5D_RULES_PYTHON`, the same one the rules server runs on.
pub fn python() -> PathBuf {
    let path = match std::env::var_os("L5D_RULES_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    };
    if !path.is_file() {
        panic!(
            "no python at {} (the virtual environment scripts/test creates has one)",
            path.display()
        );
    }
    path
}

/// A stand-in script of `tests/standins/`.
pub fn standin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/standins")
        .join(name)
}

/// Ports of one node stand-in.
#[derive(Clone, Copy, Debug)]
pub struct NodePorts {
    pub proxy: u16,
    pub admin: u16,
    pub consul: u16,
    pub viz: u16,
}

/// `tests/standins/node.py` running on loopback: one node's linkerd, consul agent,
/// hello/world/world-v2 and linkerd-viz. Stopped when dropped (and when the test process
/// dies: its stdin is a pipe held here, and it exits on EOF).
pub struct NodeStandin {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub ports: NodePorts,
}

impl NodeStandin {
    /// A healthy node.
    pub fn healthy() -> NodeStandin {
        Self::start(&[])
    }

    /// A node with extra flags of node.py (`--ignore-dtab`, `--world-down`, `--garble`,
    /// `--no-leader`, `--viz-down`).
    pub fn start(flags: &[&str]) -> NodeStandin {
        let dir = tempfile::Builder::new()
            .prefix("l5d-ecs-node-")
            .tempdir()
            .expect("tempdir for the node stand-in");
        let ports_file = dir.path().join("ports.json");
        let log = dir.path().join("node.log");
        let stderr = std::fs::File::create(&log).expect("node stand-in log");
        let mut child = Command::new(python())
            .arg(standin("node.py"))
            .args(["--proxy-port", "0", "--admin-port", "0"])
            .args(["--consul-port", "0", "--viz-port", "0"])
            .arg("--ports-file")
            .arg(&ports_file)
            .arg("--exit-on-stdin-eof")
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn tests/standins/node.py");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut delay = Duration::from_millis(20);
        let ports = loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    let port = |k: &str| {
                        v[k].as_u64()
                            .unwrap_or_else(|| panic!("ports file without {k}: {text}"))
                            as u16
                    };
                    break NodePorts {
                        proxy: port("proxy"),
                        admin: port("admin"),
                        consul: port("consul"),
                        viz: port("viz"),
                    };
                }
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node.py {flags:?} did not start (exited: {exited}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(200));
        };
        NodeStandin {
            child: Some(child),
            dir,
            ports,
        }
    }

    /// `/stats` of the stand-in: how many requests its proxy and apps served.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = http_call(self.ports.admin, "GET", "/stats", "")
            .unwrap_or_else(|e| panic!("GET /stats of the node stand-in: {e}"));
        assert_eq!(status, 200, "/stats answered {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("/stats is not JSON ({e}): {body}"))
    }

    /// How many requests the proxy served for one service (Host).
    pub fn proxied(&self, service: &str) -> u64 {
        self.stats()["proxy_by_service"][service]
            .as_u64()
            .unwrap_or(0)
    }

    /// `--node 127.0.0.1 --proxy-port P` (what `load` takes).
    pub fn node_args(&self) -> Vec<String> {
        vec![
            "--node".into(),
            "127.0.0.1".into(),
            "--proxy-port".into(),
            self.ports.proxy.to_string(),
        ]
    }

    /// `--node ... --proxy-port ... --admin-port ... --consul-port ... --viz-port ...`.
    pub fn verify_args(&self) -> Vec<String> {
        let mut args = self.node_args();
        args.extend([
            "--admin-port".into(),
            self.ports.admin.to_string(),
            "--consul-port".into(),
            self.ports.consul.to_string(),
            "--viz-port".into(),
            self.ports.viz.to_string(),
        ]);
        args
    }

    /// What node.py printed on stderr, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }
}

impl Drop for NodeStandin {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take()); // node.py exits on EOF
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                }
            }
        }
    }
}

/// A CloudWatch Logs client on moto (the harness's [`Aws`] has none).
pub async fn logs_client(endpoint: &str, region: &str) -> aws_sdk_cloudwatchlogs::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await;
    aws_sdk_cloudwatchlogs::Client::new(&config)
}

/// Task definition family of a demo app in the default stack.
pub fn family(app: &str) -> String {
    format!("{DEFAULT_STACK}-{app}")
}

/// Every task of `family` in the default stack's cluster whose desired status is RUNNING.
pub async fn tasks_of(aws: &Aws, family: &str) -> Vec<aws_sdk_ecs::types::Task> {
    // Every page: a test may have the rules server answer in small pages.
    let arns: Vec<String> = aws
        .ecs
        .list_tasks()
        .cluster(DEFAULT_STACK)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Running)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("list_tasks");
    if arns.is_empty() {
        return Vec::new();
    }
    assert!(
        arns.len() <= 100,
        "describe_tasks takes 100 at most: {}",
        arns.len()
    );
    let out = aws
        .ecs
        .describe_tasks()
        .cluster(DEFAULT_STACK)
        .set_tasks(Some(arns))
        .send()
        .await
        .expect("describe_tasks");
    out.tasks()
        .iter()
        .filter(|t| t.task_definition_arn().map(arn_family) == Some(family))
        .cloned()
        .collect()
}

/// The RUNNING tasks of a demo app that carry a `startedBy` (the tool's mark). Panics if a
/// task of the family is RUNNING without one, or the marks differ.
pub async fn started_app_tasks(aws: &Aws, app: &str) -> Vec<aws_sdk_ecs::types::Task> {
    let all = tasks_of(aws, &family(app)).await;
    let running: Vec<_> = all
        .into_iter()
        .filter(|t| t.last_status() == Some("RUNNING"))
        .collect();
    let marks: std::collections::BTreeSet<&str> = running
        .iter()
        .map(|t| t.started_by().unwrap_or(""))
        .collect();
    assert!(
        !marks.contains(""),
        "{app} tasks run without startedBy: {running:#?}"
    );
    assert!(
        marks.len() <= 1,
        "{app} tasks carry several startedBy: {marks:?}"
    );
    running
}

/// Short task id (end of the ARN).
pub fn task_id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// task ARN -> EC2 instance id, following task -> container instance -> EC2 instance.
pub async fn task_instances(
    aws: &Aws,
    tasks: &[aws_sdk_ecs::types::Task],
) -> BTreeMap<String, String> {
    let mut ci_arns: Vec<String> = tasks
        .iter()
        .filter_map(|t| t.container_instance_arn().map(str::to_string))
        .collect();
    ci_arns.sort();
    ci_arns.dedup();
    if ci_arns.is_empty() {
        return BTreeMap::new();
    }
    let out = aws
        .ecs
        .describe_container_instances()
        .cluster(DEFAULT_STACK)
        .set_container_instances(Some(ci_arns))
        .send()
        .await
        .expect("describe_container_instances");
    let ec2_of: BTreeMap<String, String> = out
        .container_instances()
        .iter()
        .filter_map(|ci| {
            Some((
                ci.container_instance_arn()?.to_string(),
                ci.ec2_instance_id()?.to_string(),
            ))
        })
        .collect();
    tasks
        .iter()
        .filter_map(|t| {
            Some((
                t.task_arn()?.to_string(),
                ec2_of.get(t.container_instance_arn()?)?.clone(),
            ))
        })
        .collect()
}

/// One EC2 instance as described now.
pub async fn instance(aws: &Aws, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = aws
        .ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe_instances {id}: {e:?}"));
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("instance {id} not found"))
}

/// Gives an instance a public address (an Elastic IP), as a default-VPC instance in AWS has;
/// returns the public IP.
pub async fn give_public_address(aws: &Aws, instance_id: &str) -> String {
    let eip = aws
        .ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .expect("allocate_address");
    aws.ec2
        .associate_address()
        .allocation_id(eip.allocation_id().expect("allocation id"))
        .instance_id(instance_id)
        .send()
        .await
        .expect("associate_address");
    eip.public_ip().expect("public ip").to_string()
}

/// The host part of `http://host:port/...`.
pub fn url_host(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
        .to_string()
}

/// The address named `name` in a JSON report's `addresses`.
pub fn address(report: &serde_json::Value, name: &str) -> Option<String> {
    report["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["url"].as_str())
        .map(str::to_string)
}

/// The check named `name` in a JSON report's `checks`.
pub fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check named {name:?} in {report:#}"))
}
