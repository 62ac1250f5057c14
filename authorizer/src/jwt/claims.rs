//! The registered-claim checks, done by this crate on the claims the signature covers.
//!
//! They run after the signature check, on the payload the token module decoded (the bytes the signature covers),
//! in a fixed order and at the time the caller passes (the app's clock), so every refusal has one exact reason and
//! `brokerctl policy explain --at` checks exp, nbf and iat at the time asked. Beyond what a JOSE library's
//! validation does, they check `iat` and the maximum age, another audience claim than `aud` (Cognito access tokens
//! carry `client_id` and no `aud`) and operator-required claims, and refuse `iss` as an array.

use serde_json::{Map, Value};

use super::JwtError;

/// The per-issuer settings the checks need.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRules {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// The claim that must name one of `audiences`: `aud`, or e.g. `client_id` for Cognito access tokens.
    pub audience_claim: String,
    pub subject_claim: String,
    /// Claims that must be present beyond iss, exp, iat, the audience claim and the subject claim.
    pub required_claims: Vec<String>,
    pub leeway: u64,
    pub max_age: u64,
}

/// What the checks extract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    pub subject: String,
    pub expires_at: u64,
    /// The last second at which this token still passes every time check made here without leeway: the earlier
    /// of `exp` and `iat` + the maximum age. A decision reused past it would let a token outlive its age limit.
    pub usable_until: u64,
}

/// Longest subject value accepted; it becomes part of a policy lookup key and of logs.
pub(crate) const MAX_SUBJECT_LEN: usize = 256;

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// A NumericDate (RFC 7519 §2): a non-negative JSON number. Fractions are rounded in the direction that makes the
/// token less valid (`exp` down, `nbf`/`iat` up). Strings, negatives, and other types are refused.
/// Largest accepted NumericDate (exclusive), in seconds: about 31 million years, far beyond any real token and well
/// inside what `SystemTime` can represent, so every accepted time converts without overflow.
const MAX_NUMERIC_DATE: u64 = 1_000_000_000_000_000;

fn numeric_date(claims: &Map<String, Value>, name: &'static str, round: Round) -> Result<u64, JwtError> {
    let n = match claims.get(name) {
        None => return Err(JwtError::MissingClaim(name)),
        Some(Value::Number(n)) => n,
        Some(_) => return Err(JwtError::InvalidClaim(name)),
    };
    if let Some(u) = n.as_u64() {
        // The same bound as for fractional values: a time no clock can hold (2^63 seconds) is a malformed claim,
        // not a token that never expires.
        return if u < MAX_NUMERIC_DATE { Ok(u) } else { Err(JwtError::InvalidClaim(name)) };
    }
    match n.as_f64() {
        Some(f) if (0.0..MAX_NUMERIC_DATE as f64).contains(&f) => {
            let r = match round {
                Round::Down => f.floor(),
                Round::Up => f.ceil(),
            };
            // In range by the guard above; `as` saturates anyway.
            Ok(r as u64)
        }
        _ => Err(JwtError::InvalidClaim(name)),
    }
}

/// Checks the claims of a token at time `now` (Unix seconds).
pub(crate) fn check(claims: &Map<String, Value>, rules: &ClaimRules, now: u64) -> Result<Checked, JwtError> {
    match claims.get("iss") {
        None => return Err(JwtError::MissingClaim("iss")),
        Some(Value::String(s)) if *s == rules.issuer => {}
        Some(Value::String(_)) => return Err(JwtError::WrongIssuer),
        Some(_) => return Err(JwtError::InvalidClaim("iss")),
    }

    check_audience(claims, rules)?;

    let exp = numeric_date(claims, "exp", Round::Down)?;
    // `nbf` is optional (RFC 7519 §4.1.5) and the access tokens of Cognito, Okta, Auth0 and Keycloak carry none:
    // checked when present, never required.
    let nbf = match claims.get("nbf") {
        None => None,
        Some(_) => Some(numeric_date(claims, "nbf", Round::Up)?),
    };
    let iat = numeric_date(claims, "iat", Round::Up)?;
    if exp.saturating_add(rules.leeway) < now {
        return Err(JwtError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now.saturating_add(rules.leeway)) {
        return Err(JwtError::NotYetValid);
    }
    if iat > now.saturating_add(rules.leeway) {
        return Err(JwtError::IssuedInFuture);
    }
    // The age limit bounds how long a leaked token is worth anything, whatever `exp` the partner chose.
    if now.saturating_sub(iat) > rules.max_age {
        return Err(JwtError::TooOld);
    }

    let subject = match claims.get(&rules.subject_claim) {
        None => return Err(JwtError::MissingClaim("subject")),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_SUBJECT_LEN => s.clone(),
        Some(_) => return Err(JwtError::InvalidClaim("subject")),
    };
    // Presence only: what a required claim must hold is not configured. A JSON null is no value, so it does not
    // count as present.
    if let Some(name) = rules.required_claims.iter().find(|c| claims.get(c.as_str()).is_none_or(Value::is_null)) {
        return Err(JwtError::MissingRequiredClaim(name.clone()));
    }
    Ok(Checked { subject, expires_at: exp, usable_until: exp.min(iat.saturating_add(rules.max_age)) })
}

/// Most entries of an `aud` array looked at; real tokens name one to three audiences.
const MAX_AUDIENCES: usize = 32;

/// The audience check. `aud` may be a string or a non-empty array of strings, one of which must be accepted
/// (RFC 7519 §4.1.3). Any other configured audience claim (Cognito's `client_id`) must be a string. With such a
/// claim configured, an `aud` the token carries anyway must still name an accepted audience: RFC 7519 says a
/// recipient that does not find itself in a present `aud` must reject the token.
fn check_audience(claims: &Map<String, Value>, rules: &ClaimRules) -> Result<(), JwtError> {
    let accepted = |a: &str| rules.audiences.iter().any(|x| x == a);
    if rules.audience_claim != "aud" {
        match claims.get(&rules.audience_claim) {
            None => return Err(JwtError::MissingClaim("audience")),
            Some(Value::String(a)) if accepted(a) => {}
            Some(Value::String(_)) => return Err(JwtError::WrongAudience),
            Some(_) => return Err(JwtError::InvalidClaim("audience")),
        }
        if !claims.contains_key("aud") {
            return Ok(());
        }
    }
    match claims.get("aud") {
        None => Err(JwtError::MissingClaim("aud")),
        Some(Value::String(a)) if accepted(a) => Ok(()),
        Some(Value::String(_)) => Err(JwtError::WrongAudience),
        Some(Value::Array(list)) => {
            if list.is_empty() || list.len() > MAX_AUDIENCES {
                return Err(JwtError::InvalidClaim("aud"));
            }
            let mut any = false;
            for v in list {
                let Value::String(a) = v else {
                    return Err(JwtError::InvalidClaim("aud"));
                };
                any |= accepted(a);
            }
            if any {
                Ok(())
            } else {
                Err(JwtError::WrongAudience)
            }
        }
        Some(_) => Err(JwtError::InvalidClaim("aud")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://idp".into(),
            audiences: vec!["api".into(), "api2".into()],
            audience_claim: "aud".into(),
            subject_claim: "sub".into(),
            required_claims: Vec::new(),
            leeway: 30,
            max_age: 300,
        }
    }

    fn base() -> Value {
        json!({"iss": "https://idp", "aud": "api", "sub": "s", "exp": NOW + 60, "nbf": NOW - 10, "iat": NOW - 10})
    }

    fn run(edit: impl FnOnce(&mut Map<String, Value>)) -> Result<Checked, JwtError> {
        let Value::Object(mut m) = base() else { unreachable!() };
        edit(&mut m);
        check(&m, &rules(), NOW)
    }

    #[test]
    fn good_claims_pass() {
        // iat + max_age (NOW + 290) is later than exp: exp bounds the reuse.
        assert_eq!(run(|_| {}).unwrap(), Checked { subject: "s".into(), expires_at: NOW + 60, usable_until: NOW + 60 });
        assert!(run(|m| drop(m.insert("aud".into(), json!(["x", "api2"])))).is_ok());
        assert!(run(|m| drop(m.insert("exp".into(), json!((NOW + 60) as f64 + 0.5)))).is_ok());
        // Inside the leeway.
        assert!(run(|m| drop(m.insert("exp".into(), json!(NOW - 29)))).is_ok());
        assert!(run(|m| drop(m.insert("nbf".into(), json!(NOW + 29)))).is_ok());
    }

    #[test]
    fn each_claim_refused_with_its_reason() {
        use JwtError::*;
        type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;
        let cases: Vec<(Edit, JwtError)> = vec![
            (Box::new(|m| drop(m.remove("iss"))), MissingClaim("iss")),
            (Box::new(|m| drop(m.insert("iss".into(), json!("https://other")))), WrongIssuer),
            (Box::new(|m| drop(m.insert("iss".into(), json!(["https://idp"])))), InvalidClaim("iss")),
            (Box::new(|m| drop(m.remove("aud"))), MissingClaim("aud")),
            (Box::new(|m| drop(m.insert("aud".into(), json!("other")))), WrongAudience),
            (Box::new(|m| drop(m.insert("aud".into(), json!(["other"])))), WrongAudience),
            (Box::new(|m| drop(m.insert("aud".into(), json!(7)))), InvalidClaim("aud")),
            (Box::new(|m| drop(m.insert("aud".into(), json!({"api": true})))), InvalidClaim("aud")),
            (Box::new(|m| drop(m.insert("aud".into(), json!(["api", 1])))), InvalidClaim("aud")),
            (Box::new(|m| drop(m.insert("aud".into(), json!([])))), InvalidClaim("aud")),
            (Box::new(|m| drop(m.remove("exp"))), MissingClaim("exp")),
            (Box::new(|m| drop(m.insert("exp".into(), json!((NOW + 60).to_string())))), InvalidClaim("exp")),
            (Box::new(|m| drop(m.insert("exp".into(), json!(-1)))), InvalidClaim("exp")),
            (Box::new(|m| drop(m.insert("exp".into(), json!(NOW - 31)))), Expired),
            (Box::new(|m| drop(m.insert("nbf".into(), json!(NOW + 31)))), NotYetValid),
            (Box::new(|m| drop(m.insert("nbf".into(), json!("soon")))), InvalidClaim("nbf")),
            (Box::new(|m| drop(m.remove("iat"))), MissingClaim("iat")),
            (Box::new(|m| drop(m.insert("iat".into(), json!(true)))), InvalidClaim("iat")),
            (Box::new(|m| drop(m.insert("iat".into(), json!(NOW + 31)))), IssuedInFuture),
            (Box::new(|m| drop(m.insert("iat".into(), json!(NOW - 301)))), TooOld),
            (Box::new(|m| drop(m.remove("sub"))), MissingClaim("subject")),
            (Box::new(|m| drop(m.insert("sub".into(), json!(5)))), InvalidClaim("subject")),
            (Box::new(|m| drop(m.insert("sub".into(), json!("")))), InvalidClaim("subject")),
        ];
        for (i, (edit, want)) in cases.into_iter().enumerate() {
            assert_eq!(run(edit), Err(want.clone()), "case {i}: {want}");
        }
    }

    #[test]
    fn usable_until_is_the_earlier_of_exp_and_the_age_limit() {
        let c = run(|m| drop(m.insert("exp".into(), json!(NOW + 3600)))).unwrap();
        assert_eq!((c.expires_at, c.usable_until), (NOW + 3600, NOW - 10 + 300));
    }

    fn with_rules(rules: &ClaimRules, edit: impl FnOnce(&mut Map<String, Value>)) -> Result<Checked, JwtError> {
        let Value::Object(mut m) = base() else { unreachable!() };
        edit(&mut m);
        check(&m, rules, NOW)
    }

    #[test]
    fn another_audience_claim_must_be_a_string_naming_us() {
        use JwtError::*;
        let r = ClaimRules { audience_claim: "client_id".into(), ..rules() };
        let cognito = |m: &mut Map<String, Value>| {
            m.remove("aud");
            m.insert("client_id".into(), json!("api2"));
        };
        assert!(with_rules(&r, cognito).is_ok());
        type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;
        let cases: Vec<(Edit, JwtError)> = vec![
            (Box::new(|m| drop(m.remove("aud"))), MissingClaim("audience")),
            (Box::new(|m| drop(m.insert("client_id".into(), json!("other")))), WrongAudience),
            (Box::new(|m| drop(m.insert("client_id".into(), json!(["api"])))), InvalidClaim("audience")),
            (Box::new(|m| drop(m.insert("client_id".into(), json!(null)))), InvalidClaim("audience")),
            // An aud next to it must still name us.
            (
                Box::new(|m| {
                    m.insert("client_id".into(), json!("api"));
                    m.insert("aud".into(), json!("someone-else"));
                }),
                WrongAudience,
            ),
        ];
        for (i, (edit, want)) in cases.into_iter().enumerate() {
            assert_eq!(with_rules(&r, edit), Err(want.clone()), "case {i}: {want}");
        }
        let both = |m: &mut Map<String, Value>| drop(m.insert("client_id".into(), json!("api2")));
        assert!(with_rules(&r, both).is_ok(), "client_id and aud both naming us");
    }

    #[test]
    fn required_claims_must_be_present() {
        let r = ClaimRules { required_claims: vec!["nbf".into(), "jti".into()], ..rules() };
        assert_eq!(with_rules(&r, |_| {}), Err(JwtError::MissingRequiredClaim("jti".into())));
        assert!(with_rules(&r, |m| drop(m.insert("jti".into(), json!("j1")))).is_ok());
        let no_nbf = |m: &mut Map<String, Value>| {
            m.insert("jti".into(), json!("j1"));
            m.remove("nbf");
        };
        assert_eq!(with_rules(&r, no_nbf), Err(JwtError::MissingRequiredClaim("nbf".into())));
        assert_eq!(
            with_rules(&r, |m| drop(m.insert("jti".into(), json!(null)))),
            Err(JwtError::MissingRequiredClaim("jti".into()))
        );
    }

    #[test]
    fn nbf_is_optional_but_checked_when_present() {
        assert!(run(|m| drop(m.remove("nbf"))).is_ok(), "a token without nbf is valid");
        assert_eq!(run(|m| drop(m.insert("nbf".into(), json!(NOW + 31)))).unwrap_err(), JwtError::NotYetValid);
    }
}
