//! The IAM evaluation API Gateway applies to the policy document a REQUEST authorizer returns: is
//! `execute-api:Invoke` on the method ARN allowed?

use serde_json::Value;

/// `*` matches any run of characters (IAM's wildcard in execute-api resources); everything else literally.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == arn;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !arn.starts_with(first) || arn.len() < first.len() + last.len() || !arn.ends_with(last) {
        return false;
    }
    let mut rest = &arn[first.len()..arn.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Evaluates an authorizer's policy document for `execute-api:Invoke` on `method_arn` as IAM does: an explicit
/// Deny wins, otherwise an Allow must match, otherwise it is denied.
pub fn policy_allows(answer: &Value, method_arn: &str) -> bool {
    let Some(statements) = answer.pointer("/policyDocument/Statement").and_then(Value::as_array) else {
        return false;
    };
    let as_list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let mut allowed = false;
    for s in statements {
        let actions = as_list(s.get("Action"));
        let action_ok = actions.iter().any(|a| arn_matches(a, "execute-api:Invoke"));
        let resource_ok = as_list(s.get("Resource")).iter().any(|r| arn_matches(r, method_arn));
        if !(action_ok && resource_ok) {
            continue;
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return false,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_iam() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:devlocal01/v1/POST/oauth2/token";
        assert!(arn_matches("arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/POST/oauth2/token", arn));
        assert!(arn_matches("*", arn));
        assert!(!arn_matches("arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/GET/oauth2/token", arn));
        assert!(!arn_matches("arn:aws:execute-api:us-east-1:123456789012:other/*/POST/oauth2/token", arn));
        assert!(arn_matches(arn, arn));
    }

    #[test]
    fn explicit_deny_wins_and_no_match_is_deny() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:devlocal01/v1/POST/oauth2/token";
        let doc = |effect: &str, res: &str| {
            serde_json::json!({"policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": [res]}]}})
        };
        assert!(policy_allows(
            &doc("Allow", "arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/POST/oauth2/token"),
            arn
        ));
        assert!(!policy_allows(
            &doc("Deny", "arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/POST/oauth2/token"),
            arn
        ));
        assert!(!policy_allows(&doc("Allow", "arn:aws:execute-api:us-east-1:123456789012:devlocal01/*/GET/x"), arn));
        let both = serde_json::json!({"policyDocument": {"Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
            {"Action": "*", "Effect": "Deny", "Resource": arn}]}});
        assert!(!policy_allows(&both, arn));
    }
}
