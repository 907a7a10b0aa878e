use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_sdk_ecs::types::{Container, Task};

use super::wait::{failing, not_everywhere};

fn task(group: &str, instance: &str, last: &str, desired: &str) -> Task {
    Task::builder()
        .task_arn(format!("arn:aws:ecs:r:1:task/c/{group}-{instance}"))
        .group(group)
        .container_instance_arn(instance)
        .last_status(last)
        .desired_status(desired)
        .stopped_reason("CannotPullContainerError: pull access denied")
        .containers(Container::builder().name("linkerd").exit_code(1).build())
        .build()
}

fn instances() -> BTreeMap<String, String> {
    [("ci-1", "i-1"), ("ci-2", "i-2")]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

#[test]
fn a_daemon_is_ready_only_when_running_on_every_active_node() {
    let one = vec![task("service:s-linkerd", "ci-1", "RUNNING", "RUNNING")];
    let pending = not_everywhere("s-linkerd", &one, &instances()).unwrap();
    assert!(
        pending.contains("1 of 2") && pending.contains("i-2 (no task)"),
        "{pending}"
    );
    let mut both = one.clone();
    both.push(task("service:s-linkerd", "ci-2", "PENDING", "RUNNING"));
    let pending = not_everywhere("s-linkerd", &both, &instances()).unwrap();
    assert!(pending.contains("i-2 (PENDING)"), "{pending}");
    both[1] = task("service:s-linkerd", "ci-2", "RUNNING", "RUNNING");
    assert_eq!(not_everywhere("s-linkerd", &both, &instances()), None);
    // Another service's task on the node does not count.
    let other = vec![
        task("service:s-consul-agent", "ci-1", "RUNNING", "RUNNING"),
        task("family:s-linkerd", "ci-2", "RUNNING", "RUNNING"),
    ];
    assert!(not_everywhere("s-linkerd", &other, &instances()).is_some());
}

#[test]
fn three_failures_of_a_daemon_stop_the_wait_with_ecs_reasons() {
    let stopped: Vec<Task> = (0..3)
        .map(|_| task("service:s-linkerd", "ci-1", "STOPPED", "STOPPED"))
        .collect();
    let began = SystemTime::now();
    assert_eq!(
        failing("s-linkerd", &stopped[..2], began, &instances()),
        None
    );
    let text = failing("s-linkerd", &stopped, began, &instances()).unwrap();
    assert!(
        text.contains("s-linkerd")
            && text.contains("CannotPullContainerError")
            && text.contains("exit code 1")
            && text.contains("on i-1"),
        "{text}"
    );
    assert_eq!(
        failing("s-consul-agent", &stopped, began, &instances()),
        None
    );
}

#[test]
fn stops_before_the_wait_began_do_not_count() {
    let old = aws_smithy_types::DateTime::from_secs(1_000);
    let stopped: Vec<Task> = (0..3)
        .map(|_| {
            let mut t = task("service:s-linkerd", "ci-1", "STOPPED", "STOPPED");
            t.stopped_at = Some(old);
            t
        })
        .collect();
    assert_eq!(
        failing("s-linkerd", &stopped, SystemTime::now(), &instances()),
        None
    );
}
