//! Where a stack's state lives: a local file, or an object in S3 (`s3://BUCKET/KEY`), checked
//! before any AWS call.

use std::fmt;
use std::path::PathBuf;

/// The `--state` flag, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateLocation {
    Local(PathBuf),
    S3(S3Object),
}

/// An object in S3 whose bucket name and key AWS would accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
}

impl S3Object {
    /// The object beside this one whose key ends in `suffix` (`.lock`, `.backup`).
    pub fn beside(&self, suffix: &str) -> Self {
        Self {
            bucket: self.bucket.clone(),
            key: format!("{}{suffix}", self.key),
        }
    }
}

impl fmt::Display for S3Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl StateLocation {
    /// "state file PATH" or "state s3://BUCKET/KEY", for messages.
    pub fn described(&self) -> String {
        match self {
            Self::Local(path) => format!("state file {}", path.display()),
            Self::S3(object) => format!("state {object}"),
        }
    }
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "{}", path.display()),
            Self::S3(object) => object.fmt(f),
        }
    }
}

/// The longest key S3 takes, in bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;

/// `s3://BUCKET/KEY` or a local path; any other `scheme://` is refused rather than taken for
/// a directory named `gs:`.
pub fn parse_state_location(raw: &str) -> Result<StateLocation, String> {
    let Some((scheme, rest)) = raw.split_once("://") else {
        if raw.is_empty() {
            return Err("the state location is empty: give a file path or s3://BUCKET/KEY".into());
        }
        return Ok(StateLocation::Local(PathBuf::from(raw)));
    };
    if scheme != "s3" {
        return Err(format!(
            "state location {raw:?}: {scheme}:// is not supported; give a file path or \
             s3://BUCKET/KEY"
        ));
    }
    parse_s3_url(rest)
        .map(StateLocation::S3)
        .map_err(|why| format!("state location {raw:?}: {why}"))
}

/// An `s3://` URL's `BUCKET/KEY`, for the state location or `state push`/`pull`.
pub fn parse_s3_object(raw: &str) -> Result<S3Object, String> {
    match raw.strip_prefix("s3://") {
        Some(rest) => parse_s3_url(rest).map_err(|why| format!("{raw:?}: {why}")),
        None => Err(format!(
            "{raw:?} is not an S3 location: give s3://BUCKET/KEY"
        )),
    }
}

fn parse_s3_url(rest: &str) -> Result<S3Object, String> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket(bucket)?;
    if key.is_empty() {
        return Err(
            "the key is missing: give s3://BUCKET/KEY, e.g. s3://my-bucket/l5d-demo.json".into(),
        );
    }
    if key.ends_with('/') {
        return Err(format!(
            "the key {key:?} ends with '/', which names a folder: add a file name"
        ));
    }
    if key.len() > MAX_KEY_BYTES - ".backup".len() {
        return Err(format!(
            "the key is {} bytes; S3 takes at most {MAX_KEY_BYTES}, and l5d-ecs adds \
             \".backup\" or \".lock\" for the objects beside it",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(format!("the key {key:?} contains a control character"));
    }
    Ok(S3Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    })
}

/// S3's rules for general purpose bucket names.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let rules = "bucket names are 3 to 63 lowercase letters, digits, dots and hyphens, starting \
                 and ending with a letter or digit";
    let chars_ok = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&bucket.len())
        || !chars_ok
        || !ends_ok(bucket.chars().next())
        || !ends_ok(bucket.chars().last())
    {
        return Err(format!("invalid bucket name {bucket:?}: {rules}"));
    }
    if bucket.contains("..") || bucket.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "invalid bucket name {bucket:?}: it may not contain \"..\" or be an IP address"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_s3_urls() {
        assert_eq!(
            parse_state_location("dir/s.json").unwrap(),
            StateLocation::Local("dir/s.json".into())
        );
        let s3 = parse_state_location("s3://my-bucket.1/team/l5d-demo.json").unwrap();
        assert_eq!(
            s3,
            StateLocation::S3(S3Object {
                bucket: "my-bucket.1".into(),
                key: "team/l5d-demo.json".into()
            })
        );
        assert_eq!(s3.to_string(), "s3://my-bucket.1/team/l5d-demo.json");
    }

    #[test]
    fn bad_locations_name_the_value_and_the_rule() {
        for (raw, says) in [
            ("", "empty"),
            ("gs://b/k", "gs:// is not supported"),
            ("s3://ab/k", "3 to 63"),
            ("s3://My-Bucket/k", "lowercase"),
            ("s3://-bucket/k", "starting"),
            ("s3://bucket", "key is missing"),
            ("s3://bucket/", "key is missing"),
            ("s3://bucket/dir/", "folder"),
            ("s3://a..b/k", ".."),
            ("s3://192.168.1.1/k", "IP address"),
        ] {
            let err = parse_state_location(raw).unwrap_err();
            assert!(err.contains(says), "{raw:?}: {err}");
        }
        let long = format!("s3://bucket/{}", "k".repeat(1020));
        assert!(parse_state_location(&long).unwrap_err().contains("1024"));
        assert!(parse_s3_object("bucket/k").unwrap_err().contains("s3://"));
    }
}
