//! The boot scripts run for real. The node's and the consul server's user data, rendered by the
//! real renderer, run under bash with every path they write kept inside a temporary root,
//! against a stand-in IMDSv2 on loopback (`tests/userdata/imds.py`, which refuses metadata
//! reads without a token it issued), with `docker` and `usermod` replaced by stand-ins that
//! record their arguments (`tests/userdata/standin`). The tests then read what the scripts
//! wrote, where the task definitions mount it, and run shellcheck over every piece of shell the
//! stack ships.
//!
//! The renderer is called through the library: the test reaches exactly the code `up` runs,
//! with no hidden subcommand or environment switch in the shipped binary.
//!
//! Needs python3 with PyYAML in `.venv` and shellcheck on PATH; `scripts/test` provides both.
//! Without them the tests fail, never skip.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use l5d_ecs::stack::StackName;
use l5d_ecs::templates::{self, BootHost, TaskDefinitionSpec, APPS, CONSUL_IMAGE};

/// What the stand-in metadata service answers.
const IP: &str = "10.11.12.13";
const INSTANCE_ID: &str = "i-0123456789abcdef0";
/// Not the default stack, so that every derived name is seen to be derived.
const STACK: &str = "mesh-7";

/// The docker daemon's socket: mounted by the task definitions, written by no boot script.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The ECS agent's config: written by the node script, mounted by no task definition.
const ECS_CONFIG_DIR: &str = "/etc/ecs";

/// The only commands on the scripts' PATH: real ones, and stand-ins that only record. A script
/// that comes to need another one fails here with "command not found", so that a new
/// dependency of the boot (which must then exist on the AMI) is a decision, not an accident.
const REAL_TOOLS: [&str; 4] = ["curl", "mkdir", "cat", "chmod"];
const STANDINS: [&str; 2] = ["docker", "usermod"];

const TIMEOUT: Duration = Duration::from_secs(60);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn stack() -> StackName {
    StackName::parse(STACK).expect("valid stack name")
}

/// The first executable called `name` on this process's PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn python() -> PathBuf {
    let python = manifest_dir().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scripts/test creates it (PyYAML comes with moto)",
        python.display()
    );
    python
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, polling with backoff, killing it after [`TIMEOUT`]. Output goes
/// through files, so a chatty child cannot block on a full pipe while it is polled.
fn finish(mut cmd: Command, what: &str) -> Finished {
    let out = tempfile::tempdir().expect("temp dir");
    let stdout = out.path().join("stdout");
    let stderr = out.path().join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let deadline = Instant::now() + TIMEOUT;
    let mut pause = Duration::from_millis(5);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {TIMEOUT:?}; stderr so far:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    };
    Finished {
        status,
        stdout: std::fs::read_to_string(&stdout).unwrap_or_default(),
        stderr: std::fs::read_to_string(&stderr).unwrap_or_default(),
    }
}

/// The stand-in metadata service, stopped on drop.
struct Imds {
    child: std::process::Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Imds {
    fn start(token_endpoint: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("requests.jsonl");
        let mut cmd = Command::new(python());
        cmd.arg(manifest_dir().join("tests/userdata/imds.py"))
            .args(["--ip", IP, "--instance-id", INSTANCE_ID, "--log"])
            .arg(&log);
        if !token_endpoint {
            cmd.arg("--no-token-endpoint");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the IMDS stand-in");
        let stdout = child.stdout.take().expect("piped stdout");
        // It prints its port once it listens; read on a thread so that a stand-in that hangs
        // fails the test at the timeout instead of blocking it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the IMDS stand-in printed no port within {TIMEOUT:?}");
            }
        };
        let port: u16 = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                panic!("the IMDS stand-in printed {line:?} instead of its port");
            }
        };
        Imds {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// (method, path, status) of every request it answered.
    fn requests(&self) -> Vec<(String, String, u64)> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("request log line");
                (
                    v["method"].as_str().unwrap_or_default().to_owned(),
                    v["path"].as_str().unwrap_or_default().to_owned(),
                    v["status"].as_u64().unwrap_or_default(),
                )
            })
            .collect()
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One boot: a root the script writes under, a PATH holding only the commands it may run, and
/// the record of the stand-ins' calls.
struct Boot {
    dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    calls: PathBuf,
}

impl Boot {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        let bin = dir.path().join("bin");
        let calls = dir.path().join("calls");
        for d in [&root, &bin, &calls] {
            std::fs::create_dir(d).expect("mkdir");
        }
        for tool in REAL_TOOLS {
            let real = which(tool).unwrap_or_else(|| panic!("{tool} is not on PATH"));
            std::os::unix::fs::symlink(real, bin.join(tool)).expect("symlink a tool");
        }
        let standin = manifest_dir().join("tests/userdata/standin");
        for name in STANDINS {
            std::os::unix::fs::symlink(&standin, bin.join(name)).expect("symlink a stand-in");
        }
        Boot {
            dir,
            root,
            bin,
            calls,
        }
    }

    fn root_str(&self) -> &str {
        self.root.to_str().expect("temp paths are UTF-8")
    }

    fn host<'a>(&'a self, imds: &'a Imds) -> BootHost<'a> {
        BootHost {
            root: self.root_str(),
            imds: &imds.url,
        }
    }

    /// A path as the instance sees it (`/etc/...`), inside this boot's root.
    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// Runs `script` as cloud-init would: bash, as root, with a bare environment.
    fn run(&self, script: &str) -> Finished {
        self.assert_confined(script);
        let file = self.dir.path().join("user-data.sh");
        std::fs::write(&file, script).expect("write the script");
        let bash = which("bash").expect("bash on PATH");
        let mut cmd = Command::new(bash);
        cmd.arg(&file)
            .env_clear()
            .env("PATH", &self.bin)
            .env("HOME", self.dir.path())
            .env("STANDIN_LOG", &self.calls)
            .current_dir(self.dir.path());
        finish(cmd, "user data")
    }

    /// Every mention of a host path that a script writes carries the root: the script cannot
    /// write to this machine's /etc or /opt (the tests may well run as root).
    fn assert_confined(&self, script: &str) {
        let mut written: BTreeSet<String> = mounted_sources();
        written.remove(DOCKER_SOCKET);
        written.extend([ECS_CONFIG_DIR, "/etc/", "/opt/"].map(String::from));
        for path in written {
            let all = script.matches(path.as_str()).count();
            let rooted = script
                .matches(format!("{}{path}", self.root_str()).as_str())
                .count();
            assert_eq!(all, rooted, "{path} outside the root in:\n{script}");
        }
    }

    /// The stand-ins' calls, in order: (command, arguments).
    fn calls(&self) -> Vec<(String, Vec<String>)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.calls)
            .expect("calls dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let command = name.split_once('-').map_or("", |(_, c)| c).to_owned();
                let raw = std::fs::read(f).expect("call record");
                let mut args: Vec<String> = raw
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                // printf '%s\0' ends every argument with NUL: the last piece is always empty.
                args.pop();
                (command, args)
            })
            .collect()
    }

    /// Directories under the root that hold no directory, as the instance sees them.
    fn leaf_dirs(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
                .expect("read dir")
                .map(|e| e.expect("dir entry").path())
                .filter(|p| p.is_dir())
                .collect();
            if subdirs.is_empty() {
                out.push(dir.to_owned());
            }
            for d in subdirs {
                walk(&d, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out.iter()
            .map(|d| {
                let rel = d.strip_prefix(&self.root).expect("under the root");
                format!("/{}", rel.display())
            })
            .collect()
    }
}

fn task_definitions() -> Vec<TaskDefinitionSpec> {
    APPS.iter()
        .map(|(app, _)| templates::task_definition(&stack(), "us-west-1", app).expect("renders"))
        .collect()
}

/// Every host `sourcePath` of every task definition.
fn mounted_sources() -> BTreeSet<String> {
    task_definitions()
        .iter()
        .flat_map(|td| td.volumes.iter().map(|v| v.host.source_path.clone()))
        .collect()
}

/// Where a path inside a container lives on the host, through the container's mounts.
fn host_path_of(td: &TaskDefinitionSpec, container: usize, path: &str) -> Option<String> {
    td.container_definitions[container]
        .mount_points
        .iter()
        .find_map(|m| {
            let rest = path.strip_prefix(&m.container_path)?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            let volume = td.volumes.iter().find(|v| v.name == m.source_volume)?;
            Some(format!("{}{rest}", volume.host.source_path))
        })
}

fn boot_node() -> (Boot, Imds) {
    let imds = Imds::start(true);
    let boot = Boot::new();
    let script = templates::node_user_data_on(&stack(), &boot.host(&imds)).expect("renders");
    let run = boot.run(&script);
    assert!(
        run.status.success(),
        "node user data failed ({}):\n{}\nstdout:\n{}",
        run.status,
        run.stderr,
        run.stdout
    );
    (boot, imds)
}

fn read(boot: &Boot, path: &str) -> String {
    std::fs::read_to_string(boot.at(path))
        .unwrap_or_else(|e| panic!("the node wrote no readable {path}: {e}"))
}

/// `path` (as the instance sees it) parsed as YAML, as JSON.
fn yaml_file_as_json(boot: &Boot, path: &str) -> Value {
    let mut cmd = Command::new(python());
    cmd.arg(manifest_dir().join("tests/userdata/yaml2json.py"))
        .arg(boot.at(path));
    let run = finish(cmd, "yaml2json.py");
    assert!(
        run.status.success(),
        "{path} does not parse as YAML:\n{}\n{}",
        run.stderr,
        read(boot, path)
    );
    serde_json::from_str(&run.stdout).expect("yaml2json.py prints JSON")
}

#[test]
fn node_user_data_boots_and_writes_what_the_daemons_mount() {
    let (boot, imds) = boot_node();

    let ecs = read(&boot, "/etc/ecs/ecs.config");
    assert!(
        ecs.lines().any(|l| l == "ECS_CLUSTER=mesh-7"),
        "ecs.config:\n{ecs}"
    );

    let agent: Value = serde_json::from_str(&read(&boot, "/opt/consul/config/consul-agent.json"))
        .expect("consul-agent.json is JSON");
    assert_eq!(agent["advertise_addr"], IP);
    assert_eq!(agent["client_addr"], "0.0.0.0");
    assert_eq!(agent["node_name"], INSTANCE_ID);
    assert_eq!(
        agent["retry_join"],
        serde_json::json!(["provider=aws tag_key=Name tag_value=mesh-7-consul-server"])
    );
    assert_eq!(agent["ports"]["dns"], -1, "consul DNS stays off");

    let l5d = yaml_file_as_json(&boot, "/etc/linkerd/linkerd.yaml");
    assert_eq!(l5d["admin"]["port"], 9990);
    assert_eq!(l5d["admin"]["ip"], "0.0.0.0");
    let namers = l5d["namers"].as_array().expect("namers");
    assert_eq!(namers.len(), 1);
    assert_eq!(namers[0]["kind"], "io.l5d.consul");
    assert_eq!(namers[0]["host"], IP);
    assert_eq!(namers[0]["port"], 8500);
    let telemetry: Vec<&str> = l5d["telemetry"]
        .as_array()
        .expect("telemetry")
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert_eq!(telemetry, ["io.l5d.prometheus", "io.l5d.recentRequests"]);
    assert_eq!(l5d["telemetry"][1]["sampleRate"], 0.25);
    let routers = l5d["routers"].as_array().expect("routers");
    assert_eq!(routers.len(), 2);
    let (outgoing, incoming) = (&routers[0], &routers[1]);
    for (router, label, port) in [(outgoing, "outgoing", 4140), (incoming, "incoming", 4141)] {
        assert_eq!(router["label"], label);
        assert_eq!(router["protocol"], "http");
        assert_eq!(router["servers"][0]["port"], port, "{label}");
        assert_eq!(router["servers"][0]["ip"], "0.0.0.0", "{label}");
        assert_eq!(
            router["dtab"].as_str().map(str::trim),
            Some("/svc => /#/io.l5d.consul/dc1;"),
            "{label}"
        );
        assert_eq!(router["interpreter"]["kind"], "default", "{label}");
    }
    let transformer = |r: &Value| r["interpreter"]["transformers"][0].clone();
    assert_eq!(transformer(outgoing)["kind"], "io.l5d.port");
    assert_eq!(transformer(outgoing)["port"], 4141);
    assert_eq!(transformer(incoming)["kind"], "io.l5d.specificHost");
    assert_eq!(transformer(incoming)["host"], IP);

    let start = boot.at("/opt/consul-registrator/bin/start.sh");
    let mode = start.metadata().expect("start.sh").permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "start.sh executable by all: {mode:o}");
    let start = read(&boot, "/opt/consul-registrator/bin/start.sh");
    assert!(start.starts_with("#!/bin/sh\n"), "start.sh:\n{start}");
    let exec: Vec<Vec<&str>> = start
        .lines()
        .filter(|l| l.starts_with("exec "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let consul = format!("consul://{IP}:8500");
    assert_eq!(
        exec,
        [vec![
            "exec",
            "/bin/registrator",
            "-ip",
            IP,
            "-retry-attempts",
            "-1",
            consul.as_str()
        ]],
        "start.sh:\n{start}"
    );

    let calls = boot.calls();
    assert_eq!(
        calls,
        [(
            "usermod".to_owned(),
            vec!["-a", "-G", "docker", "ec2-user"]
                .into_iter()
                .map(String::from)
                .collect()
        )],
        "the node starts no container itself: ECS runs the daemons"
    );

    let requests = imds.requests();
    assert!(
        requests
            .iter()
            .any(|(m, p, s)| m == "PUT" && p == "/latest/api/token" && *s == 200),
        "no token taken: {requests:?}"
    );
    for key in ["local-ipv4", "instance-id"] {
        let path = format!("/latest/meta-data/{key}");
        assert!(
            requests
                .iter()
                .any(|(m, p, s)| m == "GET" && *p == path && *s == 200),
            "{key} not read: {requests:?}"
        );
    }
    assert!(
        requests.iter().all(|(_, _, s)| *s == 200),
        "a request the metadata service refused: {requests:?}"
    );
}

#[test]
fn task_definitions_mount_exactly_the_directories_the_node_writes() {
    let (boot, _imds) = boot_node();

    let mut mounted = mounted_sources();
    assert!(mounted.remove(DOCKER_SOCKET), "{mounted:?}");
    let mut written = boot.leaf_dirs();
    assert!(written.remove(ECS_CONFIG_DIR), "{written:?}");
    assert_eq!(mounted, written);

    // Each path a container is told about (its config file, its data dir, its entry point) is
    // there, on the host side of its mount.
    let mut seen = 0;
    for td in task_definitions() {
        for (i, c) in td.container_definitions.iter().enumerate() {
            for arg in c.entry_point.iter().chain(&c.command) {
                let Some(host) = host_path_of(&td, i, arg) else {
                    continue;
                };
                assert!(
                    boot.at(&host).exists(),
                    "{}: {arg} is {host} on the host, which the node did not write",
                    td.family
                );
                seen += 1;
            }
        }
    }
    // linkerd.yaml, consul-agent.json, /consul/data, start.sh.
    assert_eq!(seen, 4, "paths in commands that land in mounts");
}

#[test]
fn consul_server_user_data_runs_consul_as_server_on_the_metadata_address() {
    let imds = Imds::start(true);
    let boot = Boot::new();
    let script =
        templates::consul_server_user_data_on(&stack(), &boot.host(&imds)).expect("renders");
    let run = boot.run(&script);
    assert!(
        run.status.success(),
        "consul server user data failed ({}):\n{}",
        run.status,
        run.stderr
    );

    let calls = boot.calls();
    let names: Vec<&str> = calls.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, ["usermod", "docker"], "{calls:?}");
    let args = &calls[1].1;
    let arg_after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    assert_eq!(args[0], "run");
    for flag in ["-d", "--restart=always", "--net=host"] {
        assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
    }
    assert_eq!(arg_after("-h"), Some(INSTANCE_ID));
    assert_eq!(arg_after("--name"), Some("consul-server"));
    let image = args
        .iter()
        .position(|a| a == CONSUL_IMAGE)
        .unwrap_or_else(|| panic!("image {CONSUL_IMAGE} in {args:?}"));
    assert_eq!(
        args[image + 1..],
        [
            "agent",
            "-server",
            "-bootstrap-expect",
            "1",
            "-advertise",
            IP,
            "-client",
            "0.0.0.0",
            "-ui",
            "-dns-port=-1"
        ]
    );
    // Host network: no port is published, and nothing is asked to bind 53 or 8400.
    for a in args {
        assert!(a != "-p" && !a.starts_with("--publish"), "{args:?}");
        assert!(!a.contains("8400") && !a.contains("53/"), "{args:?}");
        assert!(!a.contains("CONSUL_ALLOW_PRIVILEGED_PORTS"), "{args:?}");
    }
    // Its data and config dirs are the ones the script made.
    let volumes: Vec<(&str, &str)> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "-v")
        .filter_map(|(i, _)| args.get(i + 1)?.split_once(':'))
        .collect();
    let root = boot.root_str();
    for (container, host) in [
        ("/consul/data", "/opt/consul/data"),
        ("/consul/config", "/opt/consul/config"),
    ] {
        let source = format!("{root}{host}");
        assert!(
            volumes.contains(&(source.as_str(), container)),
            "{source}:{container} in {volumes:?}"
        );
        assert!(boot.at(host).is_dir(), "{host} not made");
    }
}

#[test]
fn boot_scripts_stop_when_the_metadata_service_refuses() {
    let imds = Imds::start(false);

    let node = Boot::new();
    let script = templates::node_user_data_on(&stack(), &node.host(&imds)).expect("renders");
    let run = node.run(&script);
    assert!(
        !run.status.success(),
        "node user data succeeded without metadata"
    );
    for path in [
        "/opt/consul/config/consul-agent.json",
        "/etc/linkerd/linkerd.yaml",
        "/opt/consul-registrator/bin/start.sh",
    ] {
        assert!(
            !node.at(path).exists(),
            "{path} written without metadata:\n{}",
            std::fs::read_to_string(node.at(path)).unwrap_or_default()
        );
    }

    let server = Boot::new();
    let script =
        templates::consul_server_user_data_on(&stack(), &server.host(&imds)).expect("renders");
    let run = server.run(&script);
    assert!(
        !run.status.success(),
        "consul server user data succeeded without metadata"
    );
    assert!(
        server.calls().iter().all(|(c, _)| c != "docker"),
        "consul started without an address: {:?}",
        server.calls()
    );

    let requests = imds.requests();
    assert!(
        requests.iter().all(|(_, _, s)| *s != 200),
        "the refusing service answered: {requests:?}"
    );
    assert!(!requests.is_empty(), "the scripts never asked");
}

fn shellcheck(what: &str, file: &Path, shell: &str) {
    let shellcheck = which("shellcheck")
        .expect("shellcheck is not on PATH: scripts/test installs it (apt-get install shellcheck)");
    let mut cmd = Command::new(shellcheck);
    cmd.args(["--color=never", "--shell", shell]).arg(file);
    let run = finish(cmd, "shellcheck");
    assert!(
        run.status.success(),
        "shellcheck finds fault with {what}:\n{}{}",
        run.stdout,
        run.stderr
    );
}

#[test]
fn shellcheck_passes_every_piece_of_shell_the_stack_ships() {
    let dir = tempfile::tempdir().expect("temp dir");
    let s = StackName::parse("l5d-demo").expect("valid");
    for (name, script) in [
        ("node user data", templates::node_user_data(&s)),
        (
            "consul server user data",
            templates::consul_server_user_data(&s),
        ),
    ] {
        let file = dir.path().join(name.replace(' ', "-"));
        std::fs::write(&file, script.expect("renders")).expect("write");
        shellcheck(name, &file, "bash");
    }

    // Task definitions: commands run by a shell, and scripts the node wrote that they run.
    let (boot, _imds) = boot_node();
    let mut checked = 0;
    for td in task_definitions() {
        for (i, c) in td.container_definitions.iter().enumerate() {
            let argv: Vec<&str> = c
                .entry_point
                .iter()
                .chain(&c.command)
                .map(String::as_str)
                .collect();
            let what = format!("{} container {}", td.family, c.name);
            if let [sh @ ("/bin/sh" | "sh" | "/bin/bash" | "bash"), "-c", script, ..] = argv[..] {
                let file = dir.path().join(format!("{}-{}.sh", td.family, c.name));
                std::fs::write(&file, script).expect("write");
                let shell = if sh.ends_with("bash") { "bash" } else { "sh" };
                shellcheck(&what, &file, shell);
                checked += 1;
            }
            for arg in argv.iter().filter(|a| a.ends_with(".sh")) {
                let host = host_path_of(&td, i, arg)
                    .unwrap_or_else(|| panic!("{what}: {arg} is in no mount"));
                let file = boot.at(&host);
                let text = std::fs::read_to_string(&file).expect("the node wrote it");
                let shell = if text.starts_with("#!/bin/bash") {
                    "bash"
                } else {
                    "sh"
                };
                shellcheck(&format!("{what}: {host}"), &file, shell);
                checked += 1;
            }
        }
    }
    // hello, world, world-v2 and registrator's start.sh.
    assert_eq!(checked, 4, "shell found in the task definitions");
}
