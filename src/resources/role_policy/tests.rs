use super::*;

#[test]
fn policy_documents_compare_after_url_decoding() {
    let encoded = "%7B%22Version%22%3A%20%222012-10-17%22%2C%20%22Statement%22%3A%20%5B%5D%7D";
    assert!(same_policy(
        encoded,
        r#"{"Version":"2012-10-17","Statement":[]}"#
    ));
    assert!(!same_policy(
        encoded,
        r#"{"Version":"2012-10-17","Statement":[1]}"#
    ));
}
