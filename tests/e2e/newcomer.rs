//! A newcomer's first hour (issue 11): no false "done" without a state file, a confirmation
//! that lists what `down` deletes, a live status whose columns line up, errors that name the
//! endpoint they cannot reach, one man page per command, and nothing on disk from a command
//! that creates nothing. What exists is read back from AWS; of the tool's output, the JSON
//! document, the exit code and the lines a person reads are checked.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::*;

fn up_no_wait() -> [&'static str; 4] {
    ["up", "--allow-cidr", ALLOW_CIDR, "--no-wait"]
}

/// Every file and directory under `dir`, relative to it (the test's HOME left out).
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if rel == "home" {
                continue;
            }
            out.insert(rel);
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn kinds_and_ids(found: &serde_json::Value) -> BTreeSet<(String, String)> {
    found
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {found}"))
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap_or_default().to_owned(),
                i["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_state_file_down_status_and_list_find_the_stack_made_elsewhere() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();
    let made = t.aws.snapshot(DEFAULT_STACK).await;
    made.assert_complete(DEFAULT_STACK);

    // Another directory: no state file there.
    let elsewhere = tempfile::tempdir().unwrap();
    let here = || Cli::new(elsewhere.path(), t.moto.url());

    let status = here().args(["status", "--output", "json"]).run().await;
    status.assert_success();
    let found = &status.json()["unrecorded"]["found"];
    let found = kinds_and_ids(found);
    let expect = [
        ("security-group", made.security_group.clone().unwrap()),
        ("consul-server", made.consul_instances[0].0.clone()),
        ("cluster", made.cluster.clone().unwrap()),
    ];
    for (kind, id) in expect {
        assert!(
            found.contains(&(kind.to_owned(), id.clone())),
            "status without a state file does not report {kind} {id}: {found:?}\n{status}"
        );
    }
    assert!(
        found.contains(&(
            "auto-scaling-group".to_owned(),
            format!("{DEFAULT_STACK}-asg")
        )) && made.asg.is_some(),
        "{found:?}"
    );
    for (service, (arn, _)) in &made.services {
        assert!(
            found.contains(&("daemon-service".to_owned(), arn.clone())),
            "{service} not reported: {found:?}"
        );
    }

    let text = here().arg("status").run().await;
    text.assert_success();
    assert!(
        text.stdout.contains("no state file") && text.stdout.contains("down --discover"),
        "status says plainly there is no state file, and how to remove what it found\n{text}"
    );

    // down: deletes nothing, fails, and says what is there.
    let down = here().args(["down", "--yes"]).run().await;
    assert_eq!(
        down.code,
        Some(1),
        "down must fail while the stack runs\n{down}"
    );
    assert!(
        !down.all_lower().contains(": done"),
        "no false done\n{down}"
    );
    assert!(down.stderr.contains("down --discover"), "{down}");
    let after = t.aws.snapshot(DEFAULT_STACK).await;
    after.assert_complete(DEFAULT_STACK);
    assert_eq!(
        after.leftovers(),
        made.leftovers(),
        "down without a state file deleted something"
    );

    let list = here().args(["list", "--output", "json"]).run().await;
    list.assert_success();
    let stacks = &list.json()["unrecorded"]["stacks"];
    assert!(
        stacks
            .as_array()
            .is_some_and(|s| s.iter().any(|n| n == DEFAULT_STACK)),
        "list without state files names the stack found by tag: {stacks}\n{list}"
    );

    assert!(
        files_under(elsewhere.path()).is_empty(),
        "status, down and list wrote {:?}",
        files_under(elsewhere.path())
    );

    // What they pointed at removes it all; then `down` is done, and says so with exit 0.
    here()
        .args(["down", "--discover", "--yes"])
        .run()
        .await
        .assert_success();
    let gone = t.aws.snapshot(DEFAULT_STACK).await;
    assert!(gone.leftovers().is_empty(), "left: {:?}", gone.leftovers());
    let down = here()
        .args(["down", "--yes", "--output", "json"])
        .run()
        .await;
    down.assert_success();
    assert_eq!(
        down.json()["unrecorded"]["found"].as_array().map(Vec::len),
        Some(0),
        "{down}"
    );
    assert!(files_under(elsewhere.path()).is_empty());
}

/// The `kind name` pairs of lines that look like `  <kind>  <name>  <id>` after `marker`.
fn listed_after(text: &str, marker: &str, until: &str) -> Vec<String> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in\n{text}"));
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.contains(until))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_lists_exactly_what_down_then_deletes_in_aligned_columns() {
    let t = TestEnv::new().await;
    t.cli().args(up_no_wait()).run().await.assert_success();
    assert!(
        t.aws.role(INSTANCE_ROLE).await.is_some(),
        "the role was made"
    );
    let made = t.aws.snapshot(DEFAULT_STACK).await;
    made.assert_complete(DEFAULT_STACK);

    // Asked, and answered no: nothing goes.
    let refused = t.cli().arg("down").run_on_terminal("n\n").await;
    assert_ne!(refused.code, Some(0), "{refused}");
    t.aws
        .snapshot(DEFAULT_STACK)
        .await
        .assert_complete(DEFAULT_STACK);

    let out = t.cli().arg("down").run_on_terminal("y\n").await;
    out.assert_success();
    let text = out.stdout.replace('\r', "");
    let listed = listed_after(&text, "This deletes", "Delete these");
    let listed_pairs: BTreeSet<(String, String)> = listed
        .iter()
        .map(|l| {
            let mut words = l.split_whitespace();
            (
                words.next().unwrap_or_default().to_owned(),
                words.next().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    // The name column starts at one place on every line.
    let name_columns: BTreeSet<usize> = listed
        .iter()
        .map(|l| {
            let kind_end = l.trim_start().find(' ').unwrap() + (l.len() - l.trim_start().len());
            kind_end + l[kind_end..].len() - l[kind_end..].trim_start().len()
        })
        .collect();
    assert_eq!(
        name_columns.len(),
        1,
        "columns do not line up:\n{}",
        listed.join("\n")
    );

    // What AWS had of the stack, by the names the stack derives; all of it, and only it,
    // was listed, and all of it is gone.
    let mut had: BTreeSet<(String, String)> = BTreeSet::new();
    let mut add = |kind: &str, name: String| {
        had.insert((kind.to_owned(), name));
    };
    let before = &made;
    if before.security_group.is_some() {
        add("security-group", format!("{DEFAULT_STACK}-sg"));
    }
    if !before.consul_instances.is_empty() {
        add("consul-server", format!("{DEFAULT_STACK}-consul-server"));
    }
    if before.cluster.is_some() {
        add("cluster", DEFAULT_STACK.to_owned());
    }
    if before.launch_configuration.is_some() {
        add("launch-configuration", format!("{DEFAULT_STACK}-lc"));
    }
    if before.asg.is_some() {
        add("auto-scaling-group", format!("{DEFAULT_STACK}-asg"));
    }
    for family in before.task_definitions.keys() {
        add("task-definition", family.clone());
    }
    for service in before.services.keys() {
        add("daemon-service", service.clone());
    }
    if before.policy.is_some() {
        add("role-policy", format!("{DEFAULT_STACK}-policy"));
    }
    add("instance-role", INSTANCE_ROLE.to_owned());
    add("instance-profile", INSTANCE_ROLE.to_owned());
    add("log-group", format!("/l5d-ecs/{DEFAULT_STACK}"));
    assert_eq!(
        listed_pairs, had,
        "the confirmation is not what the stack had in AWS\n{text}"
    );
    assert!(t.aws.snapshot(DEFAULT_STACK).await.leftovers().is_empty());
    assert!(
        t.aws.role(INSTANCE_ROLE).await.is_none(),
        "the role is gone"
    );
    assert!(
        t.aws.instance_profile(INSTANCE_ROLE).await.is_none(),
        "the profile is gone"
    );
    let log_groups = t
        .aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix(format!("/l5d-ecs/{DEFAULT_STACK}"))
        .send()
        .await
        .unwrap();
    assert!(log_groups.log_groups().is_empty(), "the log group is gone");
}

/// The nodes among `arns` on which `daemon`'s service has a RUNNING task.
async fn daemon_nodes(aws: &Aws, daemon: &str, arns: &[String]) -> BTreeSet<String> {
    let service = format!("{DEFAULT_STACK}-{daemon}");
    let group = format!("service:{service}");
    crate::mesh_support::tasks_of(aws, &service)
        .await
        .iter()
        .filter(|t| t.group() == Some(group.as_str()) && t.last_status() == Some("RUNNING"))
        .filter_map(|t| t.container_instance_arn())
        .filter(|a| arns.iter().any(|x| x == a))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_live_for_every_line_with_daemons_per_node_and_columns_that_line_up() {
    let t = TestEnv::new().await;
    let up = t
        .cli()
        .args(up_no_wait())
        .args(["--output", "json"])
        .run()
        .await;
    up.assert_success();
    let up_kinds: BTreeSet<String> = up.json()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    t.aws.register_container_instances(DEFAULT_STACK).await;
    let arns = t
        .aws
        .ecs
        .list_container_instances()
        .cluster(DEFAULT_STACK)
        .status(aws_sdk_ecs::types::ContainerInstanceStatus::Active)
        .send()
        .await
        .unwrap()
        .container_instance_arns()
        .to_vec();
    assert!(!arns.is_empty());
    // ECS places daemon tasks a moment after a node joins; status is read once they are, so
    // that what it says and what the test reads after it are the same moment's answer.
    until("each daemon's task on every node", || async {
        for daemon in DAEMONS {
            if daemon_nodes(&t.aws, daemon, &arns).await.len() < arns.len() {
                return None;
            }
        }
        Some(())
    })
    .await;
    // Gone behind the tool's back: status must say so, not what the state file says.
    t.aws
        .logs
        .delete_log_group()
        .log_group_name(format!("/l5d-ecs/{DEFAULT_STACK}"))
        .send()
        .await
        .unwrap();

    let status = t.cli().args(["status", "--output", "json"]).run().await;
    status.assert_success();
    let json = status.json();
    let lines = json["status"]["resources"].as_array().unwrap();
    for l in lines {
        let state = l["state"].as_str().unwrap();
        assert!(
            !state.is_empty() && !state.contains("recorded"),
            "a line not read from AWS: {l}"
        );
        let kind = l["kind"].as_str().unwrap();
        assert!(
            up_kinds.contains(kind),
            "kind {kind} is not one `up` uses: {up_kinds:?}"
        );
    }
    let log_group = lines.iter().find(|l| l["kind"] == "log-group").unwrap();
    assert_eq!(log_group["state"], "missing", "{log_group}");
    let cluster = lines.iter().find(|l| l["kind"] == "cluster").unwrap();
    assert!(
        cluster["id"].as_str().unwrap().starts_with("arn:aws:ecs:"),
        "JSON keeps the full id: {cluster}"
    );

    // Each daemon's nodes, as ECS shows them.
    for daemon in DAEMONS {
        let service = format!("{DEFAULT_STACK}-{daemon}");
        let on = daemon_nodes(&t.aws, daemon, &arns).await;
        let line = lines
            .iter()
            .find(|l| l["kind"] == "daemon-service" && l["name"] == service.as_str())
            .unwrap_or_else(|| panic!("no line for {service}: {lines:?}"));
        let want = format!("running on {} of {} node(s)", on.len(), arns.len());
        assert!(
            line["state"].as_str().unwrap().contains(&want),
            "{service}: want {want:?}: {line}"
        );
    }

    // The text: each column starts at one place, however long the ids.
    let text = t.cli().arg("status").run().await;
    text.assert_success();
    let rows: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| {
            lines
                .iter()
                .any(|r| l.starts_with(r["kind"].as_str().unwrap()))
        })
        .collect();
    assert_eq!(rows.len(), lines.len(), "{text}");
    let starts = |l: &str| -> Vec<usize> {
        let chars: Vec<char> = l.chars().collect();
        (1..chars.len())
            .filter(|&i| chars[i] != ' ' && chars[i - 1] == ' ' && i >= 2 && chars[i - 2] == ' ')
            .take(3)
            .collect()
    };
    let first = starts(rows[0]);
    for r in &rows {
        assert_eq!(
            starts(r),
            first,
            "columns do not line up:\n{}",
            rows.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_refuses_is_named_with_its_region_and_what_to_check() {
    let t = TestEnv::new().await;
    for args in [vec!["status"], up_no_wait().to_vec(), vec!["verify"]] {
        let out = Cli::new(t.work_dir(), DEAD_URL)
            .args(args.iter().copied())
            .run()
            .await;
        assert_eq!(out.code, Some(1), "{out}");
        let err = &out.stderr;
        assert!(
            err.contains("cannot connect to http://127.0.0.1:1") && err.contains(REGION),
            "the error names the endpoint and the region\n{out}"
        );
        assert!(err.contains("what to do:"), "{out}");
        assert!(
            err.contains("trying again (attempt"),
            "the retries show on the progress line\n{out}"
        );
        assert!(!err.contains("dispatch failure"), "{out}");
        assert_eq!(
            err.matches("what to do:").count(),
            1,
            "one failed step is told once\n{out}"
        );
        assert!(
            files_under(t.work_dir()).is_empty(),
            "{:?}",
            files_under(t.work_dir())
        );
    }
    let out = Cli::new(t.work_dir(), "http://l5d-ecs-test.invalid")
        .arg("status")
        .run()
        .await;
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("does not resolve"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_each_failed_step_is_named_once() {
    let t = TestEnv::new().await;
    let out = t
        .cli()
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .args(up_no_wait())
        .run()
        .await;
    assert_eq!(out.code, Some(1), "{out}");
    let err = &out.stderr;
    assert!(err.contains("no AWS credentials"), "{out}");
    if let Some(summary) = err.lines().find(|l| l.contains("steps failed")) {
        let names = summary
            .split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(n, _)| n)
            .unwrap_or_default();
        let names: Vec<&str> = names.split(", ").collect();
        let unique: BTreeSet<&&str> = names.iter().collect();
        assert_eq!(names.len(), unique.len(), "a step named twice: {summary}");
        let count: usize = summary
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or(0);
        assert_eq!(
            count,
            names.len(),
            "the count and the names differ: {summary}"
        );
    }
    assert!(
        files_under(t.work_dir()).is_empty(),
        "{:?}",
        files_under(t.work_dir())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn man_writes_one_page_per_command_with_its_flags_and_help_puts_own_options_first() {
    let t = TestEnv::new().await;
    let dir = t.work_dir().join("pages");
    let out = t
        .cli()
        .args(["man", "--dir", dir.to_str().unwrap()])
        .run()
        .await;
    out.assert_success();
    let help = t.cli().arg("--help").run().await;
    let commands: Vec<String> = help
        .stdout
        .lines()
        // A command's line starts two spaces in; its wrapped description, further.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter(|l| !l.trim_start().starts_with('-'))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'))
        .collect();
    assert!(commands.len() > 20, "{help}");
    assert!(dir.join("l5d-ecs.1").exists());
    for c in &commands {
        let page = dir.join(format!("l5d-ecs-{c}.1"));
        assert!(page.exists(), "no page for {c} in {:?}", files_under(&dir));
    }
    let up_page = std::fs::read_to_string(dir.join("l5d-ecs-up.1")).unwrap();
    for flag in ["allow\\-cidr", "wait\\-timeout", "region"] {
        assert!(up_page.contains(flag), "up's page lacks --{flag}");
    }
    let printed = t.cli().args(["man", "up"]).run().await;
    printed.assert_success();
    assert_eq!(
        printed.stdout, up_page,
        "`man up` prints the page --dir writes"
    );
    t.cli().args(["man", "sideways"]).run().await.assert_code(2);

    let up_help = t.cli().args(["up", "--help"]).run().await;
    up_help.assert_success();
    let h = &up_help.stdout;
    let at = |s: &str| h.find(s).unwrap_or_else(|| panic!("{s} not in\n{h}"));
    assert!(at("--allow-cidr") < at("Global options:"), "{h}");
    assert!(at("--no-wait") < at("--region"), "{h}");
    assert!(at("Global options:") < at("--region"), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_create_nothing_write_nothing() {
    let t = TestEnv::new().await;
    let runs: Vec<Vec<&str>> = vec![
        vec!["status"],
        vec!["status", "--discover"],
        vec!["list"],
        vec!["list", "--discover"],
        vec!["down", "--yes"],
        vec!["down", "--discover", "--yes"],
        vec!["plan", "--allow-cidr", ALLOW_CIDR],
        vec!["doctor", "--allow-cidr", ALLOW_CIDR],
        vec!["verify"],
        vec!["logs", "linkerd"],
        vec!["man", "up"],
        vec!["completions", "bash"],
    ];
    for args in runs {
        let out = t.cli().args(args.iter().copied()).run().await;
        assert!(
            files_under(t.work_dir()).is_empty(),
            "`l5d-ecs {}` left {:?}\n{out}",
            args.join(" "),
            files_under(t.work_dir())
        );
    }
}
