//! Assertions that one stack in AWS has the guide's settings (as changed by the issue),
//! read back through the SDK.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// How the nodes are launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// launch configuration `<stack>-lc`
    Configuration,
    /// launch template `<stack>-lt`
    Template,
}

fn has_stack_tag<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, stack: &str) -> bool {
    tags.into_iter().any(|(k, v)| k == STACK_TAG && v == stack)
}

/// (protocol, from, to, source) with source = CIDR or security group id; ports None for "-1".
pub type Rule = (String, Option<i32>, Option<i32>, String);

/// The ingress rules of a security group, flattened.
pub fn ingress_rules(group: &aws_sdk_ec2::types::SecurityGroup) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for perm in group.ip_permissions() {
        let proto = perm.ip_protocol().unwrap_or_default().to_string();
        let (from, to) = if proto == "-1" {
            (None, None)
        } else {
            (perm.from_port(), perm.to_port())
        };
        for range in perm.ip_ranges() {
            rules.insert((
                proto.clone(),
                from,
                to,
                range.cidr_ip().unwrap_or_default().to_string(),
            ));
        }
        for range in perm.ipv6_ranges() {
            rules.insert((
                proto.clone(),
                from,
                to,
                range.cidr_ipv6().unwrap_or_default().to_string(),
            ));
        }
        for pair in perm.user_id_group_pairs() {
            rules.insert((
                proto.clone(),
                from,
                to,
                pair.group_id().unwrap_or_default().to_string(),
            ));
        }
        for pl in perm.prefix_list_ids() {
            rules.insert((
                proto.clone(),
                from,
                to,
                pl.prefix_list_id().unwrap_or_default().to_string(),
            ));
        }
    }
    rules
}

/// The rules `security-group` must create for these CIDRs.
pub fn expected_rules(group_id: &str, cidrs: &[&str]) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for cidr in cidrs {
        for port in TCP_PORTS {
            rules.insert(("tcp".to_string(), Some(port), Some(port), cidr.to_string()));
        }
    }
    rules.insert(("-1".to_string(), None, None, group_id.to_string()));
    rules
}

/// Checks a metadata read uses IMDSv2 tokens wherever the metadata service is named.
#[track_caller]
pub fn assert_imdsv2_reads(what: &str, text: &str) {
    if text.contains("169.254.169.254") {
        assert!(
            text.to_ascii_lowercase()
                .contains("x-aws-ec2-metadata-token"),
            "{what} reads instance metadata without an IMDSv2 token:\n{text}"
        );
    }
}

/// Shell parts of user data: the whole text if it is a script, else the text/x-shellscript
/// parts of a MIME multipart document.
pub fn shell_parts(user_data: &str) -> Vec<String> {
    if user_data.starts_with("#!") {
        return vec![user_data.to_string()];
    }
    let Some(boundary) = user_data
        .split("boundary=")
        .nth(1)
        .map(|b| {
            b.trim_start_matches('"')
                .split(['"', '\r', '\n', ';'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|b| !b.is_empty())
    else {
        return Vec::new();
    };
    let marker = format!("--{boundary}");
    user_data
        .split(&marker)
        .skip(1)
        .filter_map(|part| {
            let part = part.trim_start_matches(['\r', '\n']);
            let (headers, body) = part
                .split_once("\r\n\r\n")
                .or_else(|| part.split_once("\n\n"))?;
            headers
                .to_ascii_lowercase()
                .contains("text/x-shellscript")
                .then(|| body.to_string())
        })
        .collect()
}

/// Every shell part of `user_data` passes `bash -n` (and there is at least one).
#[track_caller]
pub fn assert_user_data_is_valid_shell(what: &str, user_data: &str) {
    let parts = shell_parts(user_data);
    assert!(
        !parts.is_empty(),
        "{what}: no shell script found in user data:\n{user_data}"
    );
    for part in parts {
        assert_valid_bash(what, &part);
    }
}

/// The consul server's user data.
#[track_caller]
pub fn assert_consul_server_user_data(stack: &str, ud: &str) {
    let what = format!("{stack} consul server user data");
    assert_user_data_is_valid_shell(&what, ud);
    assert!(
        ud.contains("hashicorp/consul:"),
        "{what}: hashicorp/consul image with a tag:\n{ud}"
    );
    assert!(
        !ud.contains("hashicorp/consul:latest"),
        "{what}: pinned consul image:\n{ud}"
    );
    assert!(
        ud.contains("-server"),
        "{what}: consul agent -server:\n{ud}"
    );
    assert!(
        ud.contains("bootstrap-expect"),
        "{what}: -bootstrap-expect 1:\n{ud}"
    );
    assert!(ud.contains("/opt/consul/data"), "{what}: data dir:\n{ud}");
    assert!(
        ud.contains("/opt/consul/config"),
        "{what}: config dir:\n{ud}"
    );
    assert_imdsv2_reads(&what, ud);
}

/// The nodes' user data (launch configuration or template).
#[track_caller]
pub fn assert_node_user_data(stack: &str, ud: &str) {
    let what = format!("{stack} node user data");
    assert_user_data_is_valid_shell(&what, ud);
    assert!(
        ud.contains(&format!("ECS_CLUSTER={stack}")),
        "{what}: ECS_CLUSTER={stack}:\n{ud}"
    );
    assert!(
        ud.contains("/etc/ecs/ecs.config"),
        "{what}: /etc/ecs/ecs.config:\n{ud}"
    );
    for needle in [
        "provider=aws".to_string(),
        "tag_key=Name".to_string(),
        format!("tag_value={stack}-consul-server"),
        "/opt/consul-registrator/bin/start.sh".to_string(),
        "linkerd.yaml".to_string(),
        "io.l5d.consul".to_string(),
        "4140".to_string(),
        "4141".to_string(),
    ] {
        assert!(
            ud.contains(&needle),
            "{what}: expected {needle:?} in:\n{ud}"
        );
    }
    assert!(
        !ud.contains("start-task"),
        "{what}: daemons run as DAEMON services; user data starts no task:\n{ud}"
    );
    assert_imdsv2_reads(&what, ud);
}

fn tcp(proto: Option<&aws_sdk_ecs::types::TransportProtocol>) -> String {
    proto
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "tcp".to_string())
}

/// (container port, host port, protocol) of a container; in host network mode an absent host
/// port means the container port.
pub fn ports(
    td: &aws_sdk_ecs::types::TaskDefinition,
    c: &aws_sdk_ecs::types::ContainerDefinition,
) -> BTreeSet<(i32, Option<i32>, String)> {
    let host_mode = td.network_mode().map(|m| m.as_str()) == Some("host");
    c.port_mappings()
        .iter()
        .map(|p| {
            let container = p.container_port().unwrap_or_default();
            let host = match p.host_port() {
                Some(0) | None if host_mode => Some(container),
                Some(0) => None,
                other => other,
            };
            (container, host, tcp(p.protocol()))
        })
        .collect()
}

/// name -> value of a container's environment.
pub fn environment(c: &aws_sdk_ecs::types::ContainerDefinition) -> BTreeMap<String, String> {
    c.environment()
        .iter()
        .map(|kv| {
            (
                kv.name().unwrap_or_default().to_string(),
                kv.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// (host source path, container path, read only) of a container's mounts.
pub fn mounts(
    td: &aws_sdk_ecs::types::TaskDefinition,
    c: &aws_sdk_ecs::types::ContainerDefinition,
) -> BTreeSet<(String, String, bool)> {
    c.mount_points()
        .iter()
        .map(|m| {
            let volume = m.source_volume().unwrap_or_default();
            let host = td
                .volumes()
                .iter()
                .find(|v| v.name() == Some(volume))
                .and_then(|v| v.host())
                .and_then(|h| h.source_path())
                .unwrap_or("<no host path>")
                .to_string();
            (
                host,
                m.container_path().unwrap_or_default().to_string(),
                m.read_only().unwrap_or(false),
            )
        })
        .collect()
}

fn container<'a>(
    td: &'a aws_sdk_ecs::types::TaskDefinition,
    name: &str,
) -> &'a aws_sdk_ecs::types::ContainerDefinition {
    td.container_definitions()
        .iter()
        .find(|c| c.name() == Some(name))
        .unwrap_or_else(|| {
            panic!(
                "task definition {:?} has no container {name}: {td:#?}",
                td.family()
            )
        })
}

fn network_mode(td: &aws_sdk_ecs::types::TaskDefinition) -> &str {
    td.network_mode().map(|m| m.as_str()).unwrap_or("bridge")
}

fn memory(c: &aws_sdk_ecs::types::ContainerDefinition) -> Option<i32> {
    c.memory().or(c.memory_reservation())
}

fn command_line(c: &aws_sdk_ecs::types::ContainerDefinition) -> String {
    let mut parts: Vec<String> = c.entry_point().to_vec();
    parts.extend(c.command().iter().cloned());
    parts.join(" ")
}

#[track_caller]
fn assert_contains_all<T: Ord + std::fmt::Debug + Clone>(
    what: &str,
    have: &BTreeSet<T>,
    want: &[T],
) {
    let missing: Vec<&T> = want.iter().filter(|w| !have.contains(w)).collect();
    assert!(
        missing.is_empty(),
        "{what}: missing {missing:?}; have {have:?}"
    );
}

#[track_caller]
fn assert_pinned(what: &str, image: &str) {
    let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
    assert!(
        !tag.is_empty() && !tag.contains('/') && tag != "latest",
        "{what}: image {image:?} must be pinned to a tag"
    );
}

fn t(s: &str) -> String {
    s.to_string()
}

/// The five task definitions of `stack`.
pub async fn assert_task_definitions(aws: &Aws, stack: &str) {
    for suffix in FAMILIES {
        let family = format!("{stack}-{suffix}");
        let active = aws.active_task_definitions(&family).await;
        assert_eq!(
            active.len(),
            1,
            "family {family}: exactly one ACTIVE revision expected, found {active:?}"
        );
        let (td, tags) = aws.task_definition(&family).await;
        assert_eq!(td.family(), Some(family.as_str()));
        assert!(
            has_stack_tag(
                tags.iter()
                    .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                stack
            ),
            "task definition {family} lacks tag {STACK_TAG}={stack}: {tags:?}"
        );
        for c in td.container_definitions() {
            assert_pinned(&family, c.image().unwrap_or_default());
            assert_imdsv2_reads(
                &format!("{family} container {:?}", c.name()),
                &command_line(c),
            );
        }
        match suffix {
            "linkerd" => {
                assert_eq!(network_mode(&td), "bridge", "{family} network mode");
                let c = container(&td, "linkerd");
                let image = c.image().unwrap_or_default();
                assert!(
                    image.starts_with("buoyantio/linkerd:1."),
                    "{family} image {image}"
                );
                assert_eq!(memory(c), Some(1024), "{family} memory");
                assert_contains_all(
                    &format!("{family} ports"),
                    &ports(&td, c),
                    &[
                        (4140, Some(4140), t("tcp")),
                        (4141, Some(4141), t("tcp")),
                        (9990, Some(9990), t("tcp")),
                    ],
                );
                assert_eq!(
                    environment(c).get("SERVICE_9990_NAME").map(String::as_str),
                    Some("linkerd"),
                    "{family} env"
                );
                assert_contains_all(
                    &format!("{family} mounts"),
                    &mounts(&td, c),
                    &[(t("/etc/linkerd"), t("/etc/linkerd"), true)],
                );
                assert!(
                    command_line(c).contains("/etc/linkerd/linkerd.yaml"),
                    "{family} command: {}",
                    command_line(c)
                );
            }
            "linkerd-viz" => {
                assert_eq!(network_mode(&td), "host", "{family} network mode");
                let c = container(&td, "linkerd-viz");
                let image = c.image().unwrap_or_default();
                assert!(
                    image.starts_with("buoyantio/linkerd-viz:"),
                    "{family} image {image}"
                );
                assert_eq!(memory(c), Some(1024), "{family} memory");
                assert_contains_all(
                    &format!("{family} ports"),
                    &ports(&td, c),
                    &[(3000, Some(3000), t("tcp")), (9191, Some(9191), t("tcp"))],
                );
                assert_eq!(
                    environment(c).get("SCRAPE_INTERVAL").map(String::as_str),
                    Some("5s"),
                    "{family} env"
                );
                assert!(
                    command_line(c).contains("consul"),
                    "{family} command: {}",
                    command_line(c)
                );
            }
            "consul-agent" => {
                assert_eq!(network_mode(&td), "bridge", "{family} network mode");
                let c = container(&td, "consul-agent");
                let image = c.image().unwrap_or_default();
                assert!(
                    image.starts_with("hashicorp/consul:"),
                    "{family} image {image}"
                );
                assert_eq!(memory(c), Some(128), "{family} memory");
                assert_contains_all(
                    &format!("{family} ports"),
                    &ports(&td, c),
                    &[
                        (8301, Some(8301), t("tcp")),
                        (8301, Some(8301), t("udp")),
                        (8500, Some(8500), t("tcp")),
                    ],
                );
                // consul 1.x serves no RPC on 8400, and its DNS is off: a published 53/udp
                // serves nothing and can clash with systemd-resolved on the node.
                for (port, _, _) in ports(&td, c) {
                    assert!(
                        port != 8400 && port != 53,
                        "{family} publishes port {port}, which consul does not serve"
                    );
                }
                let m = mounts(&td, c);
                assert_contains_all(
                    &format!("{family} mounts"),
                    &m,
                    &[(t("/opt/consul/config"), t("/etc/consul"), true)],
                );
                assert!(
                    m.iter()
                        .any(|(h, cp, _)| h == "/opt/consul/data" && cp == "/consul/data"),
                    "{family}: /opt/consul/data -> /consul/data: {m:?}"
                );
                assert!(
                    m.iter()
                        .any(|(h, _, ro)| h == "/var/run/docker.sock" && *ro),
                    "{family}: docker.sock read-only: {m:?}"
                );
                let cmd = command_line(c);
                assert!(
                    cmd.contains("agent") && cmd.contains("/etc/consul"),
                    "{family} command: {cmd}"
                );
            }
            "consul-registrator" => {
                assert_eq!(network_mode(&td), "host", "{family} network mode");
                let c = container(&td, "consul-registrator");
                // The guide's tag is v7; any pinned tag that still pulls is fine (see the spec:
                // Docker 25+ refuses schema-1 manifests).
                let image = c.image().unwrap_or_default();
                assert!(
                    image.starts_with("gliderlabs/registrator:"),
                    "{family} image {image}"
                );
                assert_eq!(memory(c), Some(128), "{family} memory");
                assert!(
                    c.entry_point()
                        .iter()
                        .any(|e| e.contains("/bin/consul-registrator/start.sh")),
                    "{family} entry point: {:?}",
                    c.entry_point()
                );
                assert_contains_all(
                    &format!("{family} mounts"),
                    &mounts(&td, c),
                    &[
                        (
                            t("/opt/consul-registrator/bin"),
                            t("/bin/consul-registrator"),
                            true,
                        ),
                        (t("/var/run/docker.sock"), t("/tmp/docker.sock"), true),
                    ],
                );
            }
            "hello-world" => {
                assert_eq!(network_mode(&td), "bridge", "{family} network mode");
                let names: BTreeSet<&str> = td
                    .container_definitions()
                    .iter()
                    .filter_map(|c| c.name())
                    .collect();
                assert_eq!(
                    names,
                    BTreeSet::from(["hello", "world", "world-v2"]),
                    "{family} containers"
                );
                for (name, text) in [
                    ("hello", "Hello"),
                    ("world", "World"),
                    ("world-v2", "World-V2"),
                ] {
                    let c = container(&td, name);
                    assert_eq!(
                        c.image(),
                        Some("buoyantio/helloworld:0.1.6"),
                        "{family}/{name} image"
                    );
                    assert_eq!(memory(c), Some(128), "{family}/{name} memory");
                    assert_eq!(
                        c.entry_point(),
                        ["/bin/sh".to_string(), "-c".to_string()],
                        "{family}/{name} entry point"
                    );
                    assert_eq!(
                        ports(&td, c),
                        BTreeSet::from([(1234, None, t("tcp"))]),
                        "{family}/{name}: container port 1234, dynamic host port"
                    );
                    assert_eq!(
                        environment(c).get("SERVICE_NAME").map(String::as_str),
                        Some(name),
                        "{family}/{name} env"
                    );
                    let cmd = command_line(c);
                    let flag = format!("-text={text}");
                    let other_matches =
                        cmd.matches(&flag).count() - cmd.matches(&format!("{flag}-")).count();
                    assert!(
                        other_matches >= 1,
                        "{family}/{name} command lacks {flag}: {cmd}"
                    );
                    assert!(cmd.contains("helloworld"), "{family}/{name} command: {cmd}");
                    assert!(
                        cmd.contains("4140"),
                        "{family}/{name} http_proxy via linkerd: {cmd}"
                    );
                    if name == "hello" {
                        assert!(
                            cmd.contains("-target=world"),
                            "{family}/hello command: {cmd}"
                        );
                    }
                }
            }
            _ => unreachable!(),
        }
    }
}

/// Everything `up` builds for `stack`, with the guide's settings as changed by the issue.
/// `cidrs` are the `--allow-cidr` values.
pub async fn assert_stack_settings(aws: &Aws, stack: &str, cidrs: &[&str], launch: Launch) {
    let ami = recommended_ami(aws).await;
    let (subnet, az) = default_subnet_first_az(aws).await;
    let vpc = aws
        .ec2
        .describe_subnets()
        .subnet_ids(&subnet)
        .send()
        .await
        .expect("describe_subnets")
        .subnets()[0]
        .vpc_id()
        .unwrap_or_default()
        .to_string();

    // 1. Security group.
    let sg = aws
        .security_group(&format!("{stack}-sg"))
        .await
        .unwrap_or_else(|| panic!("security group {stack}-sg missing"));
    let sg_id = sg.group_id().unwrap_or_default().to_string();
    assert_eq!(
        sg.description(),
        Some("Linkerd Demo"),
        "{stack}-sg description"
    );
    assert_eq!(
        sg.vpc_id(),
        Some(vpc.as_str()),
        "{stack}-sg in the default VPC"
    );
    assert_eq!(
        ingress_rules(&sg),
        expected_rules(&sg_id, cidrs),
        "{stack}-sg ingress rules"
    );
    assert!(
        has_stack_tag(
            sg.tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
            stack
        ),
        "{stack}-sg tags: {:?}",
        sg.tags()
    );

    // 2. Consul server.
    let consul = aws.live_instances(&format!("{stack}-consul-server")).await;
    assert_eq!(
        consul.len(),
        1,
        "exactly one {stack}-consul-server: {consul:#?}"
    );
    let server = &consul[0];
    let server_id = server.instance_id().unwrap_or_default();
    assert_eq!(
        server.instance_type().map(|t| t.as_str()),
        Some("m4.xlarge"),
        "consul server instance type"
    );
    assert_eq!(
        server.image_id(),
        Some(ami.as_str()),
        "consul server AMI (from SSM)"
    );
    assert_eq!(
        server.subnet_id(),
        Some(subnet.as_str()),
        "consul server subnet ({az})"
    );
    assert!(
        server
            .security_groups()
            .iter()
            .any(|g| g.group_id() == Some(sg_id.as_str())),
        "consul server in {stack}-sg: {:?}",
        server.security_groups()
    );
    let md = server
        .metadata_options()
        .expect("consul server metadata options");
    assert_eq!(
        md.http_tokens().map(|t| t.as_str()),
        Some("required"),
        "consul IMDSv2"
    );
    assert_eq!(
        md.http_put_response_hop_limit(),
        Some(2),
        "consul hop limit"
    );
    assert!(
        has_stack_tag(
            server
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
            stack
        ),
        "consul server tags: {:?}",
        server.tags()
    );
    let ud = aws
        .instance_user_data(server_id)
        .await
        .expect("consul server user data");
    assert_consul_server_user_data(stack, &ud);

    // 3. Cluster.
    let cluster = aws.cluster(stack).await.expect("cluster");
    assert_eq!(cluster.status(), Some("ACTIVE"), "cluster {stack}");
    assert!(
        has_stack_tag(
            cluster
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
            stack
        ),
        "cluster tags: {:?}",
        cluster.tags()
    );

    // 4. Role policy.
    let policy = aws
        .role_policy(INSTANCE_ROLE, &format!("{stack}-policy"))
        .await
        .unwrap_or_else(|| panic!("inline policy {stack}-policy on {INSTANCE_ROLE} missing"));
    let (actions, non_allow) = allowed_actions(&policy);
    assert_eq!(
        actions,
        BTreeSet::from(["ec2:DescribeInstances".to_string()]),
        "{stack}-policy allows only ec2:DescribeInstances: {policy}"
    );
    assert!(
        !non_allow,
        "{stack}-policy: only Allow statements: {policy}"
    );
    let role = aws.role(INSTANCE_ROLE).await.expect("role");
    assert!(
        role.attached_policies
            .iter()
            .any(|a| a == ECS_MANAGED_POLICY_ARN),
        "{INSTANCE_ROLE} has {ECS_MANAGED_POLICY_ARN}: {role:?}"
    );
    let profile = aws
        .instance_profile(INSTANCE_ROLE)
        .await
        .expect("instance profile ecsInstanceRole");
    assert!(
        profile.roles.iter().any(|r| r == INSTANCE_ROLE),
        "instance profile holds the role: {profile:?}"
    );

    // 5. Task definitions.
    assert_task_definitions(aws, stack).await;

    // 6. Launch configuration or template.
    let lc = aws.launch_configuration(&format!("{stack}-lc")).await;
    let lt = aws.launch_template(&format!("{stack}-lt")).await;
    match launch {
        Launch::Configuration => {
            assert!(lt.is_none(), "no launch template expected: {lt:?}");
            let lc = lc.unwrap_or_else(|| panic!("launch configuration {stack}-lc missing"));
            assert_eq!(lc.image_id(), Some(ami.as_str()), "LC AMI");
            assert_eq!(lc.instance_type(), Some("m4.xlarge"), "LC instance type");
            let profile = lc.iam_instance_profile().unwrap_or_default();
            assert!(
                profile == INSTANCE_ROLE || profile.ends_with(&format!("/{INSTANCE_ROLE}")),
                "LC instance profile {profile:?}"
            );
            assert!(
                lc.security_groups().iter().any(|g| g == &sg_id),
                "LC security groups {:?}",
                lc.security_groups()
            );
            let md = lc.metadata_options().expect("LC metadata options");
            assert_eq!(
                md.http_tokens().map(|t| t.as_str()),
                Some("required"),
                "LC IMDSv2"
            );
            assert_eq!(md.http_put_response_hop_limit(), Some(2), "LC hop limit");
            let ud = decode_user_data(lc.user_data().expect("LC user data"));
            assert_node_user_data(stack, &ud);
        }
        Launch::Template => {
            assert!(lc.is_none(), "no launch configuration expected: {lc:?}");
            let lt = lt.unwrap_or_else(|| panic!("launch template {stack}-lt missing"));
            assert!(
                has_stack_tag(
                    lt.tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                    stack
                ),
                "launch template tags: {:?}",
                lt.tags()
            );
            let data = aws
                .launch_template_data(lt.launch_template_id().unwrap_or_default())
                .await;
            assert_eq!(data.image_id(), Some(ami.as_str()), "LT AMI");
            assert_eq!(
                data.instance_type().map(|t| t.as_str()),
                Some("m4.xlarge"),
                "LT instance type"
            );
            let profile = data.iam_instance_profile().expect("LT instance profile");
            assert!(
                profile.name() == Some(INSTANCE_ROLE)
                    || profile
                        .arn()
                        .is_some_and(|a| a.ends_with(&format!("/{INSTANCE_ROLE}"))),
                "LT instance profile {profile:?}"
            );
            let groups: Vec<&String> = data
                .security_group_ids()
                .iter()
                .chain(data.network_interfaces().iter().flat_map(|n| n.groups()))
                .collect();
            assert!(groups.contains(&&sg_id), "LT security groups {groups:?}");
            let md = data.metadata_options().expect("LT metadata options");
            assert_eq!(
                md.http_tokens().map(|t| t.as_str()),
                Some("required"),
                "LT IMDSv2"
            );
            assert_eq!(md.http_put_response_hop_limit(), Some(2), "LT hop limit");
            let ud = decode_user_data(data.user_data().expect("LT user data"));
            assert_node_user_data(stack, &ud);
        }
    }

    // 7. Auto scaling group.
    let asg = aws
        .auto_scaling_group(&format!("{stack}-asg"))
        .await
        .unwrap_or_else(|| panic!("auto scaling group {stack}-asg missing"));
    assert_eq!(
        (asg.min_size(), asg.max_size(), asg.desired_capacity()),
        (Some(1), Some(3), Some(2)),
        "ASG min/max/desired"
    );
    match launch {
        Launch::Configuration => assert_eq!(
            asg.launch_configuration_name(),
            Some(format!("{stack}-lc").as_str()),
            "ASG launch configuration"
        ),
        Launch::Template => assert_eq!(
            asg.launch_template().and_then(|l| l.launch_template_name()),
            Some(format!("{stack}-lt").as_str()),
            "ASG launch template: {:?}",
            asg.launch_template()
        ),
    }
    assert!(
        asg.vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .any(|s| s.trim() == subnet),
        "ASG subnets {:?} include the default subnet {subnet}",
        asg.vpc_zone_identifier()
    );
    let name_tag = asg
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .expect("ASG Name tag");
    assert_eq!(name_tag.value(), Some(format!("{stack}-ecs").as_str()));
    assert_eq!(
        name_tag.propagate_at_launch(),
        Some(true),
        "Name tag propagated"
    );
    assert!(
        has_stack_tag(
            asg.tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
            stack
        ),
        "ASG tags {:?}",
        asg.tags()
    );
    let nodes = aws.live_instances(&format!("{stack}-ecs")).await;
    assert_eq!(nodes.len(), 2, "two nodes tagged Name={stack}-ecs");

    // 8. DAEMON services.
    let names: Vec<String> = DAEMONS.iter().map(|d| format!("{stack}-{d}")).collect();
    let services = aws.live_services(stack, &names).await;
    assert_eq!(services.len(), 3, "three services: {services:#?}");
    for s in &services {
        let name = s.service_name().unwrap_or_default();
        assert_eq!(s.status(), Some("ACTIVE"), "service {name} status");
        assert_eq!(
            s.scheduling_strategy().map(|x| x.as_str()),
            Some("DAEMON"),
            "service {name} scheduling strategy"
        );
        let td = s.task_definition().unwrap_or_default();
        assert_eq!(
            arn_family(td),
            name,
            "service {name} runs family {name}: {td}"
        );
        assert!(
            has_stack_tag(
                s.tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                stack
            ),
            "service {name} tags {:?}",
            s.tags()
        );
    }
}

/// The role and instance profile were created by l5d-ecs: trust ec2, managed policy, tagged.
pub async fn assert_role_created_by_tool(aws: &Aws) {
    let role = aws.role(INSTANCE_ROLE).await.expect("role ecsInstanceRole");
    let trust = role.trust.to_string();
    assert!(
        trust.contains("ec2.amazonaws.com") && trust.contains("sts:AssumeRole"),
        "trust policy lets ec2 assume the role: {trust}"
    );
    assert!(
        role.attached_policies
            .iter()
            .any(|a| a == ECS_MANAGED_POLICY_ARN),
        "managed policy attached: {role:?}"
    );
    assert!(
        role.tags.keys().any(|k| k.starts_with("l5d-ecs")),
        "role is marked with an l5d-ecs tag: {:?}",
        role.tags
    );
    let profile = aws
        .instance_profile(INSTANCE_ROLE)
        .await
        .expect("instance profile");
    assert_eq!(profile.roles, vec![INSTANCE_ROLE.to_string()]);
    assert!(
        profile.tags.keys().any(|k| k.starts_with("l5d-ecs")),
        "instance profile is marked with an l5d-ecs tag: {:?}",
        profile.tags
    );
}
