//! NOT FOR PRODUCTION. Policy documents the tests, examples and benchmarks share, so a change to the policy format
//! is made once, and helpers that write them where a function binary or a `Config` reads them (`POLICY_FILE`).
//!
//! ```
//! use tb_devkit::fixtures::{reporting_policy, write_policy};
//! let file = write_policy(&reporting_policy(3));
//! let yaml = std::fs::read_to_string(file.path()).unwrap();
//! assert!(yaml.contains("id: reporting"));
//! ```

use std::io::Write;
use std::sync::Arc;

use tb_shared::context::{KeySet, MemoryKeySource};

/// The `reporting` caller's id.
pub const REPORTING_CALLER: &str = "reporting";
/// The DNS name in the `reporting` caller's client certificate (its SAN), which the policy maps to the caller.
pub const REPORTING_DNS: &str = "reporting.svc.example.internal";
/// The one scope the `reporting` caller may have, and its default.
pub const REPORTING_SCOPE: &str = "customer-api/read";

/// The `reporting` caller as one entry of a policy's `callers:` list: identified by [`REPORTING_DNS`], Cognito app
/// client `reporting`, [`REPORTING_SCOPE`] allowed and by default, `day_limit` grants a day, tokens of at most an
/// hour, token reuse off.
pub fn reporting_caller(day_limit: u64) -> String {
    format!(
        "  - id: {REPORTING_CALLER}\n    \
         identities: [{{ type: san_dns, value: {REPORTING_DNS} }}]\n    \
         cognito_client: reporting\n    \
         allowed_scopes: [{REPORTING_SCOPE}]\n    \
         default_scopes: [{REPORTING_SCOPE}]\n    \
         quotas: [{{ per: day, limit: {day_limit} }}]\n    \
         max_token_lifetime_seconds: 3600\n    \
         token_reuse: false\n"
    )
}

/// A version 1 policy document with `callers`, each an entry of the `callers:` list as [`reporting_caller`] writes
/// one (indented two spaces, ending in a newline).
pub fn policy_yaml(callers: &[&str]) -> String {
    let mut yaml = String::from("version: 1\ncallers:\n");
    for caller in callers {
        yaml.push_str(caller);
    }
    yaml
}

/// A policy with the `reporting` caller only ([`reporting_caller`]).
pub fn reporting_policy(day_limit: u64) -> String {
    policy_yaml(&[&reporting_caller(day_limit)])
}

/// Writes `yaml` to a new temporary `.yaml` file, removed when the returned handle drops. Panics if it cannot.
pub fn write_policy(yaml: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .prefix("tb-policy-")
        .suffix(".yaml")
        .tempfile()
        .expect("a temporary policy file can be created");
    file.write_all(yaml.as_bytes()).expect("the temporary policy file can be written");
    file.flush().expect("the temporary policy file can be written");
    file
}

/// A new temporary directory named after `tag`, removed when the returned handle drops. Panics if it cannot.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("tb-{tag}-")).tempdir().expect("a temporary directory can be created")
}

/// Writes `contents` to `name` in `dir` and returns the path as a string, for a function's environment. Panics if it
/// cannot.
pub fn write_file(dir: &tempfile::TempDir, name: &str, contents: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, contents).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
    p.to_string_lossy().into_owned()
}

/// The id of the test context key ([`context_keys`]).
pub const CONTEXT_KEY_ID: &str = "test-1";
/// The test context key's bytes: fixed, so both functions of a chain test (and a replay of a captured context)
/// agree on it. Public test material, never a deployment's key.
pub const CONTEXT_KEY_BYTES: [u8; 32] = *b"tb-devkit-test-context-key-32by!";

/// The key set of one test key ([`CONTEXT_KEY_ID`], [`CONTEXT_KEY_BYTES`]), which signs.
pub fn context_key_set() -> KeySet {
    KeySet::single(CONTEXT_KEY_ID, CONTEXT_KEY_BYTES.to_vec()).expect("the test key set follows the document rules")
}

/// A ready-made context-key source holding [`context_key_set`], for the `context_keys` field of either function's
/// `Deps`. Give both functions of a chain test the same source (or two made by this function: the key is fixed) so
/// the broker accepts the authorizer's context; `set` and `set_unavailable` drive rotations and outages.
pub fn context_keys() -> Arc<MemoryKeySource> {
    Arc::new(MemoryKeySource::new(context_key_set().to_document()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reporting_policy_loads() {
        let yaml = reporting_policy(3);
        let policy = tb_shared::policy::Policy::from_bytes("reporting.yaml", yaml.as_bytes()).unwrap();
        let id = tb_shared::ids::CallerId::try_from(REPORTING_CALLER).unwrap();
        assert!(policy.caller(&id).is_some(), "{yaml}");
        let file = write_policy(&yaml);
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), yaml);
        assert!(file.path().extension().is_some_and(|e| e == "yaml"));
    }

    #[tokio::test]
    async fn the_test_context_keys_load() {
        use tb_shared::context::KeySource as _;
        let source = context_keys();
        let set = source.fetch().await.unwrap();
        assert_eq!(set.signing().id(), CONTEXT_KEY_ID);
        assert_eq!(set.ids().collect::<Vec<_>>(), [CONTEXT_KEY_ID]);
    }
}
