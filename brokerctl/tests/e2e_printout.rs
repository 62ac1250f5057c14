//! The commands `brokerctl dev` prints work when pasted. Every command line of the printout runs, in order, in one
//! POSIX shell (`sh`, with curl and python3, as the printout needs) against the running stack, as a newcomer pasting
//! them one after the other would; each one's output is checked against what the printout's comments promise:
//! tokens for the callers and the partner, the stranger's 403, the caller claims in the tokens, the resource server's
//! answers for an unbound token, and the certificate-bound token served with its certificate and refused (401
//! `invalid_token`) with another one or none. Embedded stores and moto.
//!
//! A command added to the printout fails this test until a check for it is added here. Neither the printout nor the
//! commands' answers show an app-client secret or the context key.

use e2e_common::tokens::thumbprint;
use e2e_common::{start, Mode};
use serde_json::Value;

#[macro_use]
mod e2e_common;

/// The command lines of a printout: everything after the header paragraph that is neither blank nor a comment.
fn command_lines(printed: &str) -> Vec<String> {
    let (_, commands) = printed.split_once("\n\n").expect("a header paragraph, then the commands");
    commands.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

/// Runs `commands` in one `sh`, each followed by a marker, and returns each command's standard output and the
/// shell's standard error.
async fn run_pasted(commands: &[String]) -> (Vec<String>, String) {
    let mut script = String::new();
    for (i, c) in commands.iter().enumerate() {
        script.push_str(&format!("{c}\nprintf '\\n@@@%s@@@\\n' {i}\n"));
    }
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh").arg("-c").arg(&script).output().expect("sh runs (the printout needs a shell)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut outputs = Vec::new();
    let mut rest = stdout.as_str();
    for (i, command) in commands.iter().enumerate() {
        let marker = format!("\n@@@{i}@@@\n");
        let (before, after) =
            rest.split_once(&marker).unwrap_or_else(|| panic!("command {i} did not finish: {command}"));
        outputs.push(before.trim().to_owned());
        rest = after;
    }
    (outputs, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn json(output: &str) -> Value {
    serde_json::from_str(output).unwrap_or_else(|e| panic!("not JSON ({e}): {output}"))
}

async fn the_printed_commands_work_when_pasted(mode: Mode) {
    let s = start(mode, "printout", |_| {}).await;
    let printed = s.curl_commands();
    let commands = command_lines(&printed);
    let (outputs, stderr) = run_pasted(&commands).await;
    assert!(stderr.is_empty(), "the commands wrote to standard error:\n{stderr}");
    // Neither the printout nor anything the commands show holds an app-client secret or a context-key byte.
    let document: Value =
        serde_json::from_str(secrecy::ExposeSecret::expose_secret(&s.context_key_set().to_document())).unwrap();
    let keys = document["keys"].as_object().unwrap().values().map(|k| k.as_str().unwrap().to_owned());
    let secrets = s.state().secrets.iter().map(|a| a.client_secret.clone());
    let shown = format!("{printed}\n{}", outputs.join("\n"));
    for secret in keys.chain(secrets) {
        assert!(secret.len() >= 32 && !shown.contains(&secret), "a secret is shown");
    }

    let version = s.policy().version.clone();
    let (orders_thumbprint, reporting_thumbprint) = (thumbprint(&s, "order-processing"), thumbprint(&s, "reporting"));
    let token = |out: &str| {
        let body = json(out);
        assert!(body["access_token"].as_str().is_some_and(|t| t.starts_with("eyJ")), "no token: {body}");
        body
    };
    let payload = |out: &str, caller: &str, method: &str, fingerprint: Option<&str>, cnf: Option<&str>| {
        let claims = json(out);
        assert_eq!(claims["tb:callerId"], caller, "{claims}");
        assert_eq!(claims["tb:authMethod"], method, "{claims}");
        assert_eq!(claims["tb:policyVersion"], version.as_str(), "{claims}");
        if let Some(f) = fingerprint {
            assert_eq!(claims["tb:credentialFingerprint"], f, "{claims}");
        }
        match cnf {
            Some(t) => assert_eq!(claims["cnf"]["x5t#S256"], t, "{claims}"),
            None => assert!(claims.get("cnf").is_none(), "an unbound token with cnf: {claims}"),
        }
    };
    let error = |out: &str, code: &str| assert_eq!(json(out)["error"], code, "{out}");
    type Check<'a> = Box<dyn Fn(&str) + 'a>;
    let checks: Vec<(&str, Check)> = vec![
        (
            "clients/order-processing.pem --key .* -d grant_type=client_credentials --data-urlencode",
            Box::new(|o| assert_eq!(token(o)["scope"], "customer-api/admin customer-api/read")),
        ),
        ("clients/reporting.pem --key .* -d grant_type=client_credentials https", Box::new(|o| _ = token(o))),
        ("clients/stranger.pem", Box::new(|o| error(o, "unauthorized_client"))),
        (
            "curl -s --cacert .*partner/token.jwt)\" -d grant_type",
            Box::new(|o| assert_eq!(token(o)["expires_in"], 900)),
        ),
        ("token_claims() {", Box::new(|o| assert_eq!(o, ""))),
        ("TOKEN=$(curl", Box::new(|o| assert_eq!(o, ""))),
        ("token_claims \"$TOKEN\"", Box::new(|o| payload(o, "reporting", "mtls", Some(&reporting_thumbprint), None))),
        (
            "-H \"Authorization: Bearer $TOKEN\" https://.*/customers$",
            Box::new(|o| assert_eq!(json(o)[0]["id"], "123")),
        ),
        ("-X DELETE -H \"Authorization: Bearer $TOKEN\"", Box::new(|o| error(o, "insufficient_scope"))),
        ("BOUND=$(curl", Box::new(|o| assert_eq!(o, ""))),
        (
            "token_claims \"$BOUND\"",
            Box::new(|o| payload(o, "order-processing", "mtls", Some(&orders_thumbprint), Some(&orders_thumbprint))),
        ),
        (
            "clients/order-processing.pem .* -X DELETE -H \"Authorization: Bearer $BOUND\"",
            Box::new(|o| assert_eq!(json(o)["deleted"], "123")),
        ),
        (
            "clients/reporting.pem .* -X DELETE -H \"Authorization: Bearer $BOUND\"",
            Box::new(|o| error(o, "invalid_token")),
        ),
        ("pem -X DELETE -H \"Authorization: Bearer $BOUND\"", Box::new(|o| error(o, "invalid_token"))),
        ("token_claims \"$(curl", Box::new(|o| payload(o, "partner-acme", "jwt", None, None))),
    ];
    assert_eq!(commands.len(), checks.len(), "every printed command needs a check here:\n{}", commands.join("\n"));
    for (i, ((pattern, check), (command, output))) in checks.iter().zip(commands.iter().zip(&outputs)).enumerate() {
        assert!(matches(command, pattern), "command {i} is not the one expected ({pattern}): {command}");
        check(output);
    }
}

/// Whether `command` matches `pattern`: its literal parts in order, `.*` standing for anything, `$` at the end
/// for the end of the command.
fn matches(command: &str, pattern: &str) -> bool {
    let (pattern, anchored) = match pattern.strip_suffix('$') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let mut rest = command;
    for part in pattern.split(".*") {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    !anchored || rest.is_empty()
}

both!(the_printed_commands_work_when_pasted);
