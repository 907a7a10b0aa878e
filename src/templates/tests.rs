use super::*;

fn stack() -> StackName {
    StackName::parse("l5d-demo").unwrap()
}

fn bash_n(script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user-data.sh");
    std::fs::write(&path, script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .expect("bash must be installed to check the user data");
    assert!(
        out.status.success(),
        "bash -n failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn consul_server_user_data_is_valid_shell_with_imdsv2() {
    let script = consul_server_user_data(&stack()).unwrap();
    bash_n(&script);
    assert!(script.starts_with("#!/bin/bash"));
    assert!(script.contains("X-aws-ec2-metadata-token"));
    assert!(script.contains(CONSUL_IMAGE));
    assert!(script.contains("-bootstrap-expect 1"));
    assert!(!script.contains("{{"));
}

#[test]
fn node_user_data_is_valid_shell_joins_cluster_and_starts_nothing() {
    let script = node_user_data(&stack()).unwrap();
    bash_n(&script);
    assert!(script.contains("echo ECS_CLUSTER=l5d-demo >> /etc/ecs/ecs.config"));
    assert!(script.contains("tag_value=l5d-demo-consul-server"));
    assert!(script.contains("X-aws-ec2-metadata-token"));
    // Every metadata read goes through the token.
    for line in script.lines().filter(|l| l.contains("169.254.169.254")) {
        assert!(line.starts_with("IMDS="), "plain metadata read: {line}");
    }
    assert!(!script.contains("docker run"));
    assert!(!script.contains("start-task"));
    assert!(!script.contains("{{"));
}

#[test]
fn every_task_definition_renders() {
    for (app, _) in APPS {
        let spec = task_definition(&stack(), "us-west-1", app).unwrap();
        assert_eq!(spec.family, format!("l5d-demo-{app}"));
        assert!(!spec.container_definitions.is_empty());
        for c in &spec.container_definitions {
            for cmd in c.command.iter().filter(|c| c.contains("169.254.169.254")) {
                assert!(cmd.contains("X-aws-ec2-metadata-token"), "{app}: {cmd}");
            }
            // Pinned tags only.
            let tag = c.image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest", "{app}: {}", c.image);
        }
    }
    let hello = task_definition(&stack(), "us-west-1", "hello-world").unwrap();
    let names: Vec<_> = hello
        .container_definitions
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["hello", "world", "world-v2"]);
    assert_eq!(
        hello.container_definitions[0]
            .log_configuration
            .as_ref()
            .unwrap()
            .options["awslogs-group"],
        "/l5d-ecs/l5d-demo"
    );
    assert_eq!(app_of_container("world-v2"), Some("hello-world"));
    assert_eq!(app_of_container("linkerd"), Some("linkerd"));
    assert_eq!(app_of_container("nope"), None);
    let consul = task_definition(&stack(), "us-west-1", "consul-agent").unwrap();
    assert!(consul.container_definitions[0]
        .image
        .starts_with("hashicorp/consul:"));
}

#[test]
fn digest_changes_with_the_definition() {
    let a = task_definition(&stack(), "us-west-1", "linkerd").unwrap();
    let mut b = a.clone();
    assert_eq!(a.digest(), b.digest());
    b.container_definitions[0].memory += 1;
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn policies_parse_and_grant_only_describe_instances() {
    let policy: serde_json::Value = serde_json::from_str(NODE_POLICY).unwrap();
    let actions = &policy["Statement"][0]["Action"];
    assert_eq!(actions, &serde_json::json!(["ec2:DescribeInstances"]));
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 1);
    let trust: serde_json::Value = serde_json::from_str(EC2_TRUST_POLICY).unwrap();
    assert_eq!(
        trust["Statement"][0]["Principal"]["Service"],
        "ec2.amazonaws.com"
    );
}

/// What linkerd's JVM needs besides heap and direct buffers: metaspace (Finagle, Scala,
/// Jackson and every plugin: about 100 MiB), code cache, thread stacks, the collector's
/// own structures and malloc arenas.
const JVM_OTHER_MIB: i32 = 256;

fn mib(size: &str) -> i32 {
    let (n, unit) = size.split_at(size.len() - 1);
    let n: i32 = n.parse().unwrap_or_else(|_| panic!("size {size:?}"));
    match unit {
        "M" | "m" => n,
        "G" | "g" => n * 1024,
        _ => panic!("size {size:?}: expected M or G"),
    }
}

fn env(c: &ContainerSpec, name: &str) -> String {
    c.environment
        .iter()
        .find(|kv| kv.name == name)
        .unwrap_or_else(|| panic!("{}: no {name}", c.name))
        .value
        .clone()
}

#[test]
fn linkerd_heap_and_direct_buffers_leave_room_under_the_hard_limit() {
    let spec = task_definition(&stack(), "us-west-1", "linkerd").unwrap();
    let c = &spec.container_definitions[0];
    let heap = mib(&env(c, "JVM_HEAP_MAX"));
    assert_eq!(mib(&env(c, "JVM_HEAP_MIN")), heap, "heap pinned");
    let options = env(c, "LOCAL_JVM_OPTIONS");
    let direct = options
        .split_whitespace()
        .find_map(|o| o.strip_prefix("-XX:MaxDirectMemorySize="))
        .map(mib)
        .unwrap_or_else(|| panic!("direct buffers uncapped: {options:?}"));
    assert!(
        heap + direct + JVM_OTHER_MIB <= c.memory,
        "heap {heap} + direct {direct} + other {JVM_OTHER_MIB} MiB over the {} MiB limit",
        c.memory
    );
}

#[test]
fn consul_agent_publishes_only_gossip_and_http_under_a_go_memory_limit() {
    let spec = task_definition(&stack(), "us-west-1", "consul-agent").unwrap();
    let c = &spec.container_definitions[0];
    let ports: Vec<_> = c
        .port_mappings
        .iter()
        .map(|p| (p.host_port, p.container_port, p.protocol.as_str()))
        .collect();
    assert_eq!(
        ports,
        [
            (Some(8301), 8301, "tcp"),
            (Some(8301), 8301, "udp"),
            (Some(8500), 8500, "tcp")
        ]
    );
    let limit = env(c, "GOMEMLIMIT");
    let limit: i32 = limit.strip_suffix("MiB").unwrap().parse().unwrap();
    // Room for what Go does not count: the binary's pages and the C side.
    assert!(
        limit + 32 <= c.memory,
        "GOMEMLIMIT {limit}MiB, limit {}",
        c.memory
    );
}

#[test]
fn consul_server_serves_no_dns_and_no_gone_ports() {
    let script = consul_server_user_data(&stack()).unwrap();
    assert!(script.contains("-dns-port=-1"));
    for gone in [
        "8400",
        "8600",
        ":53",
        " 53",
        "CONSUL_ALLOW_PRIVILEGED_PORTS",
    ] {
        assert!(!script.contains(gone), "{gone:?} in:\n{script}");
    }
    let node = node_user_data(&stack()).unwrap();
    assert!(node.contains(r#""ports": { "dns": -1 }"#));
}

#[test]
fn boot_host_prefixes_every_path_and_instances_get_plain_ones() {
    let ec2 = node_user_data(&stack()).unwrap();
    assert!(ec2.contains(" /etc/linkerd/linkerd.yaml"));
    assert!(ec2.contains("IMDS=http://169.254.169.254/latest\n"));
    assert!(!ec2.contains("//etc") && !ec2.contains("//opt"));
    let host = BootHost {
        root: "/tmp/boot-1/",
        imds: "http://127.0.0.1:8080",
    };
    for script in [
        node_user_data_on(&stack(), &host).unwrap(),
        consul_server_user_data_on(&stack(), &host).unwrap(),
    ] {
        assert!(script.contains("IMDS=http://127.0.0.1:8080/latest\n"));
        assert!(!script.contains("169.254.169.254"));
        let unprefixed = script
            .replace("/tmp/boot-1/opt", "")
            .replace("/tmp/boot-1/etc", "");
        assert!(!unprefixed.contains(" /opt/") && !unprefixed.contains(" /etc/ecs"));
    }
}

#[test]
fn boot_host_refuses_what_the_shell_would_not_take_literally() {
    for root in ["tmp/x", "/tmp/a b", "/tmp/$HOME", "/tmp/x;y", "/tmp/`x`"] {
        let host = BootHost {
            root,
            ..BootHost::EC2
        };
        assert!(node_user_data_on(&stack(), &host).is_err(), "{root:?}");
    }
    for imds in ["https://169.254.169.254", "http://h/$(x)", "http://a b"] {
        let host = BootHost {
            imds,
            ..BootHost::EC2
        };
        assert!(
            consul_server_user_data_on(&stack(), &host).is_err(),
            "{imds:?}"
        );
    }
}

#[test]
fn unreplaced_placeholder_is_an_error() {
    assert!(render("a {{X}} b", &[]).is_err());
    assert_eq!(render("a {{X}} b", &[("X", "1")]).unwrap(), "a 1 b");
}
