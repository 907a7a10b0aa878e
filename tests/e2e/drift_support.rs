//! Support for `plan_drift`, `doctor` and `snapshots` (issue 6):
//! reading the rows of a `plan` report, reading the proxy's mutating calls with their
//! parameters, and normalising output for snapshots (ids, times, ports redacted; JSON reduced to
//! its shape). Uses the harness of `support`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{percent_decode, Call, Cli, Output, Proxy};

// ---------------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------------

/// Runs `l5d-ecs <args> --output json` to completion; returns the run and its JSON document.
pub async fn run_json(cli: Cli, args: &[&str]) -> (Output, Value) {
    let out = cli
        .args(args.iter().copied())
        .args(["--output", "json"])
        .run()
        .await;
    let json = out.json();
    (out, json)
}

// ---------------------------------------------------------------------------------------------
// `plan` rows
// ---------------------------------------------------------------------------------------------

/// One row of `resources` in a JSON report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub kind: String,
    pub name: String,
    pub action: String,
    pub detail: Option<String>,
}

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<8} {:<21} {}", self.action, self.kind, self.name)?;
        if let Some(d) = &self.detail {
            write!(f, "  ({d})")?;
        }
        Ok(())
    }
}

/// The `resources` rows of a report (panics, printing the run, when there are none).
#[track_caller]
pub fn rows(out: &Output, report: &Value) -> Vec<Row> {
    let list = report["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no `resources` array in the JSON report\n{out}"));
    list.iter()
        .map(|r| {
            let field = |k: &str| {
                r[k].as_str()
                    .unwrap_or_else(|| panic!("resource row without string `{k}`: {r}\n{out}"))
                    .to_string()
            };
            Row {
                kind: field("kind"),
                name: field("name"),
                action: field("action"),
                detail: r["detail"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// All rows, one per line, for failure messages.
pub fn show(rows: &[Row]) -> String {
    rows.iter().map(|r| format!("  {r}\n")).collect()
}

/// The one row of `kind` named `name` (panics when there is none or more than one).
#[track_caller]
pub fn row<'a>(rows: &'a [Row], kind: &str, name: &str) -> &'a Row {
    let found: Vec<&Row> = rows
        .iter()
        .filter(|r| r.kind == kind && r.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one `{kind}` row named {name}, rows:\n{}",
        show(rows)
    );
    found[0]
}

/// (kind, name) of every row `plan` shows for `stack` with the default flags (launch
/// configuration, role `ecsInstanceRole`), in the order it prints them.
pub fn plan_resources(stack: &str) -> Vec<(String, String)> {
    plan_resources_with_launch(stack, "launch-configuration", &format!("{stack}-lc"))
}

/// As [`plan_resources`], with another launch row (a launch template, or a launch
/// configuration that replaced `<stack>-lc` under a new name).
pub fn plan_resources_with_launch(
    stack: &str,
    launch_kind: &str,
    launch_name: &str,
) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("security-group".into(), format!("{stack}-sg")),
        ("consul-server".into(), format!("{stack}-consul-server")),
        ("cluster".into(), stack.to_string()),
        ("instance-role".into(), "ecsInstanceRole".into()),
        ("instance-profile".into(), "ecsInstanceRole".into()),
        ("role-policy".into(), format!("{stack}-policy")),
    ];
    for f in crate::support::FAMILIES {
        v.push(("task-definition".into(), format!("{stack}-{f}")));
    }
    v.push(("log-group".into(), format!("/l5d-ecs/{stack}")));
    v.push((launch_kind.into(), launch_name.into()));
    v.push(("auto-scaling-group".into(), format!("{stack}-asg")));
    for d in crate::support::DAEMONS {
        v.push(("daemon-service".into(), format!("{stack}-{d}")));
    }
    v
}

/// Panics unless `rows` are exactly `want` (same order) and each has an action of `create`,
/// `keep`, `repair` or `replace`.
#[track_caller]
pub fn assert_plan_rows_with(rows: &[Row], want: Vec<(String, String)>) {
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.kind.clone(), r.name.clone()))
        .collect();
    assert_eq!(
        got,
        want,
        "plan rows differ from the stack's resources:\n{}",
        show(rows)
    );
    for r in rows {
        assert!(
            ["create", "keep", "repair", "replace"].contains(&r.action.as_str()),
            "plan action must be create/keep/repair/replace: {r}"
        );
    }
}

/// Rows whose action is not `keep`.
pub fn changes(rows: &[Row]) -> Vec<&Row> {
    rows.iter().filter(|r| r.action != "keep").collect()
}

// ---------------------------------------------------------------------------------------------
// Proxy calls
// ---------------------------------------------------------------------------------------------

/// `service:Operation` of every mutating call the proxy saw, sorted.
pub fn mutating_ops(proxy: &Proxy) -> Vec<String> {
    let mut ops: Vec<String> = proxy
        .mutating_calls()
        .iter()
        .map(|c| format!("{}:{}", c.service, c.operation))
        .collect();
    ops.sort();
    ops
}

/// Calls of one operation.
pub fn calls_of(proxy: &Proxy, operation: &str) -> Vec<Call> {
    proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == operation)
        .collect()
}

/// Parameters of a query-protocol call (EC2, Auto Scaling, IAM): `Key=Value&...`, decoded.
pub fn form_params(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Body of a JSON-protocol call (ECS, CloudWatch Logs).
#[track_caller]
pub fn json_body(call: &Call) -> Value {
    serde_json::from_str(&call.body)
        .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {}", call.operation, call.body))
}

// ---------------------------------------------------------------------------------------------
// Normalising output for snapshots
// ---------------------------------------------------------------------------------------------

/// Prefixes of the AWS ids moto makes up (`vpc-0a1b2c...`): replaced by `<prefix>-[id]`.
const ID_PREFIXES: [&str; 9] = ["vpc", "subnet", "sg", "i", "ami", "igw", "lt", "eni", "rtb"];

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Replaces, in `text`, what differs from run to run: AWS ids (`vpc-...`, `i-...`, UUIDs in
/// ARNs and task ids), moto's private addresses (`172.31.x.y`), loopback ports, elapsed times
/// (`done in 1.2s`, `[1.2s]`), times of day (`12:34:56Z`) and timestamps. Trailing spaces at
/// the ends of lines are dropped (the tables pad their last column).
pub fn redact(text: &str) -> String {
    let mut s = text.to_string();
    s = replace_uuids(&s);
    s = replace_ids(&s);
    s = replace_after(&s, "172.31.", |rest| {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n = rest[..n].trim_end_matches('.').len();
        (n > 0).then(|| (n, "[ip]".to_string()))
    });
    s = s.replace("172.31.[ip]", "[ip]");
    s = replace_after(&s, "127.0.0.1:", |rest| {
        let n = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        (n > 0).then(|| (n, "[port]".to_string()))
    });
    s = replace_after(&s, "done in ", |rest| {
        seconds(rest).map(|n| (n, "[time]".into()))
    });
    s = replace_after(&s, "[", |rest| {
        let t = rest.trim_start();
        let skipped = rest.len() - t.len();
        seconds(t)
            .filter(|n| t[*n..].starts_with(']'))
            .map(|n| (skipped + n, "time".into()))
    });
    s = replace_times_of_day(&s);
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// Length of `<digits>[.<digits>]s` at the start of `rest`, if it is one.
fn seconds(rest: &str) -> Option<usize> {
    let digits = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    (digits > 0 && rest[digits..].starts_with('s')).then_some(digits + 1)
}

/// For every occurrence of `marker`, lets `f` look at what follows and replace its first
/// `n` bytes.
fn replace_after(text: &str, marker: &str, f: impl Fn(&str) -> Option<(usize, String)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(marker) {
        let after = pos + marker.len();
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        if let Some((n, replacement)) = f(rest) {
            out.push_str(&replacement);
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

/// `<prefix>-<8+ hex>` as a whole word → `<prefix>-[id]`.
fn replace_ids(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < chars.len() {
        if i == 0 || !is_word(chars[i - 1]) {
            for prefix in ID_PREFIXES {
                let p: Vec<char> = prefix.chars().collect();
                let end = i + p.len();
                if end < chars.len() && chars[i..end] == p[..] && chars[end] == '-' {
                    let mut j = end + 1;
                    while j < chars.len() && chars[j].is_ascii_hexdigit() {
                        j += 1;
                    }
                    let boundary = j == chars.len() || !is_word(chars[j]);
                    if j - (end + 1) >= 8 && boundary {
                        out.push_str(prefix);
                        out.push_str("-[id]");
                        i = j;
                        continue 'outer;
                    }
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// UUIDs (8-4-4-4-12 hex) and 32-hex task ids → `[uuid]`.
fn replace_uuids(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if i == 0 || !chars[i - 1].is_ascii_hexdigit() {
            if let Some(n) = uuid_at(&chars[i..]) {
                out.push_str("[uuid]");
                i += n;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn uuid_at(chars: &[char]) -> Option<usize> {
    let hex_run = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count()
    };
    // 8-4-4-4-12
    let mut pos = 0;
    let mut ok = true;
    for (k, len) in [8, 4, 4, 4, 12].iter().enumerate() {
        if hex_run(pos) != *len {
            ok = false;
            break;
        }
        pos += len;
        if k < 4 {
            if chars.get(pos) != Some(&'-') {
                ok = false;
                break;
            }
            pos += 1;
        }
    }
    if ok && !chars.get(pos).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Some(pos);
    }
    // 32 hex (ECS task ids), with at least one letter and one digit so that words are safe.
    let n = hex_run(0);
    let run = &chars[..n.min(chars.len())];
    if n == 32
        && run.iter().any(|c| c.is_ascii_digit())
        && run.iter().any(|c| c.is_ascii_alphabetic())
        && !chars.get(n).is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Some(n);
    }
    None
}

/// `HH:MM:SS` (with optional fraction and `Z`, and an optional `YYYY-MM-DDT` before it) →
/// `[time]`.
fn replace_times_of_day(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let d = |c: Option<&char>| c.is_some_and(|c| c.is_ascii_digit());
    while i < chars.len() {
        let at = |k: usize| chars.get(i + k);
        let hms = d(at(0))
            && d(at(1))
            && at(2) == Some(&':')
            && d(at(3))
            && d(at(4))
            && at(5) == Some(&':')
            && d(at(6))
            && d(at(7))
            && (i == 0 || !chars[i - 1].is_ascii_digit());
        if hms {
            let mut j = i + 8;
            if chars.get(j) == Some(&'.') {
                j += 1;
                while d(chars.get(j)) {
                    j += 1;
                }
            }
            while matches!(chars.get(j), Some('Z') | Some('+')) || d(chars.get(j)) {
                j += 1;
            }
            // A date right before it (`2026-01-02T`) goes too.
            let tail: String = out
                .chars()
                .rev()
                .take(11)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let tb = tail.as_bytes();
            if tb.len() == 11
                && tb[10] == b'T'
                && tb[4] == b'-'
                && tb[7] == b'-'
                && tb[..4].iter().all(u8::is_ascii_digit)
            {
                for _ in 0..11 {
                    out.pop();
                }
            }
            out.push_str("[time]");
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The shape of a JSON value: keys kept (sorted), each value replaced by its type (`string`,
/// `integer`, `float`, `bool`, `null`). An array becomes `[]` when empty, else a one-element
/// array with the shapes of all its elements merged: objects by the union of their keys,
/// different scalar types as `a|b`. So neither the order nor the number of elements matters,
/// nor which element has an optional key or which map has which entries.
pub fn shape(v: &Value) -> Value {
    match v {
        Value::Null => Value::String("null".into()),
        Value::Bool(_) => Value::String("bool".into()),
        Value::Number(n) if n.is_f64() => Value::String("float".into()),
        Value::Number(_) => Value::String("integer".into()),
        Value::String(_) => Value::String("string".into()),
        Value::Array(items) => match items.iter().map(shape).reduce(|a, b| merge(&a, &b)) {
            Some(s) => Value::Array(vec![s]),
            None => Value::Array(Vec::new()),
        },
        Value::Object(map) => sorted_object(map.iter().map(|(k, v)| (k.clone(), shape(v)))),
    }
}

fn sorted_object(entries: impl Iterator<Item = (String, Value)>) -> Value {
    let mut entries: Vec<(String, Value)> = entries.collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(entries.into_iter().collect())
}

/// Merges two shapes (see [`shape`]).
fn merge(a: &Value, b: &Value) -> Value {
    match (a, b) {
        _ if a == b => a.clone(),
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            sorted_object(keys.into_iter().map(|k| {
                let v = match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => merge(p, q),
                    (Some(p), None) | (None, Some(p)) => p.clone(),
                    (None, None) => unreachable!("key from one of the maps"),
                };
                (k.clone(), v)
            }))
        }
        (Value::Array(x), Value::Array(y)) => {
            match x
                .iter()
                .chain(y.iter())
                .cloned()
                .reduce(|p, q| merge(&p, &q))
            {
                Some(s) => Value::Array(vec![s]),
                None => Value::Array(Vec::new()),
            }
        }
        (Value::String(x), Value::String(y)) => {
            let mut parts: Vec<&str> = x.split('|').chain(y.split('|')).collect();
            parts.sort();
            parts.dedup();
            Value::String(parts.join("|"))
        }
        _ => {
            let (mut p, mut q) = (a.to_string(), b.to_string());
            if p > q {
                std::mem::swap(&mut p, &mut q);
            }
            Value::String(format!("{p}|{q}"))
        }
    }
}

/// `shape(v)`, pretty-printed, for a snapshot.
pub fn shape_text(v: &Value) -> String {
    serde_json::to_string_pretty(&shape(v)).expect("serialise a shape")
}

/// `v` with object keys sorted, pretty-printed and redacted, for a snapshot of values.
pub fn redacted_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&map[k]));
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
    redact(&serde_json::to_string_pretty(&sorted(v)).expect("serialise JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_replaces_what_changes_between_runs() {
        let text = "create   security-group  l5d-demo-sg   (in vpc-cb6fe8b2a92896b62)   \n\
                    kept i-04ffbae357db86e7e sg-a19c8f57802a7bb89 ami-06e51fa5c9a821c84 \
                    subnet-ab90e6130b3cc69e9\n\
                    arn:aws:autoscaling:us-west-1:1:launchConfiguration:9dbbbf87-6141-428a-a409-0752edbe6cad:x\n\
                    task/l5d-demo/0123456789abcdef0123456789abcdef on 172.31.0.8 via 127.0.0.1:40123\n\
                    13:51:59Z [1.7s] plan l5d-demo: done in 3.3s at 2026-01-02T03:04:05.123Z\n\
                    l5d-demo-linkerd multi-az i-am-not-an-id";
        let want = "create   security-group  l5d-demo-sg   (in vpc-[id])\n\
                    kept i-[id] sg-[id] ami-[id] subnet-[id]\n\
                    arn:aws:autoscaling:us-west-1:1:launchConfiguration:[uuid]:x\n\
                    task/l5d-demo/[uuid] on [ip] via 127.0.0.1:[port]\n\
                    [time] [time] plan l5d-demo: done in [time] at [time]\n\
                    l5d-demo-linkerd multi-az i-am-not-an-id";
        assert_eq!(redact(text), want);
    }

    #[test]
    fn shape_keeps_keys_and_types_only() {
        let v = serde_json::json!({
            "b": [ {"x": 1, "y": "a"}, {"x": 2, "m": {}}, {"x": null, "m": {"k": [1.5]}} ],
            "a": 1.5, "c": null, "d": true, "e": []
        });
        let want = serde_json::json!({
            "a": "float",
            "b": [ {"m": {"k": ["float"]}, "x": "integer|null", "y": "string"} ],
            "c": "null", "d": "bool", "e": []
        });
        assert_eq!(shape(&v), want);
    }
}
