use super::*;

#[test]
fn json_report_shape() {
    let out = Output::new(OutputFormat::Json, true);
    out.record(ResourceKind::Cluster, "s", "arn:x", Action::Created);
    out.set_region("us-west-1");
    let report = out.report("up", "s", None);
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "schema_version": 1,
            "command": "up",
            "stack": "s",
            "region": "us-west-1",
            "ok": true,
            "resources": [
                {"kind": "cluster", "name": "s", "id": "arn:x", "action": "created"}
            ]
        })
    );
}
