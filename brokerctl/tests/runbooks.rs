//! The operator documents name only `brokerctl` commands that exist: every `brokerctl …` command line in a fenced
//! code block of the runbooks, the deployment guide, the local-stack guide and the README is parsed by the real
//! command-line parser, so a renamed subcommand or flag, or a runbook written ahead of the code, fails here instead
//! of in the middle of an incident. What each command does is tested by its own suite (`truststore.rs`,
//! `publish_moto.rs`, `quota_moto.rs`, `secret_moto.rs`, `rotate_secret.rs`, `policy.rs`, `e2e.rs`).

use std::path::{Path, PathBuf};

use brokerctl::cli::Cli;
use clap::error::ErrorKind;
use clap::Parser;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("brokerctl sits in the repository root").to_path_buf()
}

/// The documents an operator follows.
fn documents() -> Vec<PathBuf> {
    let root = repo();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs/runbooks"))
        .expect("docs/runbooks is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.extend(["docs/deploy.md", "docs/local-stack.md", "README.md"].map(|d| root.join(d)));
    docs.sort();
    docs
}

/// The logical lines of every fenced code block (`\` continuations joined), with their first line number.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            pending = None;
            continue;
        }
        if !in_block {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        let trimmed = line.trim_end();
        if let Some(head) = trimmed.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
        } else {
            joined.push_str(trimmed);
            out.push((start, joined));
        }
    }
    out
}

/// The words of a `brokerctl` invocation on `line` (from `brokerctl` up to the first shell operator or comment), or
/// `None` when the line does not run brokerctl. `cargo run … -p brokerctl --` counts as `brokerctl`.
fn invocation(line: &str) -> Option<Result<Vec<String>, String>> {
    let text = line.trim_start().trim_start_matches("$ ");
    let start = if let Some(rest) = text.strip_prefix("brokerctl ") {
        rest
    } else if text.starts_with("cargo run") && text.contains("-p brokerctl") && !text.contains("--example") {
        text.split_once(" -- ").map(|(_, rest)| rest)?
    } else {
        return None;
    };
    // Comments end the command; a `#` inside quotes is not expected in these documents.
    let command = start.split(" #").next().unwrap_or(start);
    let Some(words) = shlex::split(command) else {
        return Some(Err(format!("cannot split into words: {command}")));
    };
    let mut argv = vec!["brokerctl".to_owned()];
    for w in words {
        // `<TruststoreBucketName>` is a placeholder for the reader to fill in, not a redirection.
        if w.len() > 2 && w.starts_with('<') && w.ends_with('>') && !w[1..w.len() - 1].contains(['<', '>']) {
            argv.push(w);
            continue;
        }
        if ["|", "||", "&&", ";", "<", ">", ">>", "2>", "2>&1", "&"].contains(&w.as_str()) || w.starts_with('<') {
            break;
        }
        if w.starts_with('>') || w.starts_with("2>") {
            break;
        }
        argv.push(w);
    }
    Some(Ok(argv))
}

#[test]
fn every_documented_brokerctl_command_parses() {
    let mut seen = 0;
    let mut failures = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let name = doc.strip_prefix(repo()).unwrap_or(&doc).display().to_string();
        for (line_no, line) in code_lines(&text) {
            let Some(argv) = invocation(&line) else { continue };
            seen += 1;
            let argv = match argv {
                Ok(a) => a,
                Err(e) => {
                    failures.push(format!("{name}:{line_no}: {e}"));
                    continue;
                }
            };
            match Cli::try_parse_from(&argv) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {}
                Err(e) => failures.push(format!("{name}:{line_no}: `{}`: {}", argv.join(" "), e.kind())),
            }
        }
    }
    assert!(failures.is_empty(), "documented commands that brokerctl does not accept:\n{}", failures.join("\n"));
    // The runbooks do name brokerctl commands; finding none would mean this test reads nothing.
    assert!(seen >= 5, "only {seen} brokerctl command lines found in the operator documents");
}

#[test]
fn the_reader_finds_commands_and_stops_at_shell_operators() {
    let doc =
        "text `brokerctl nope` outside a block\n```sh\nbrokerctl secret put svc \\\n  --name <Param> < creds.json\n\
               cargo run -q -p brokerctl -- quota show svc --json | jq .\necho done\n```\n";
    let lines = code_lines(doc);
    let found: Vec<Vec<String>> = lines.iter().filter_map(|(_, l)| invocation(l)).map(|r| r.unwrap()).collect();
    assert_eq!(
        found,
        [
            vec!["brokerctl", "secret", "put", "svc", "--name", "<Param>"],
            vec!["brokerctl", "quota", "show", "svc", "--json"],
        ]
    );
    assert_eq!(lines[0].0, 3, "a continued command is reported at its first line");
    assert!(
        invocation("cargo run --release -p brokerctl --example load -- 32 10").is_none(),
        "an example is not brokerctl"
    );
    let unknown = invocation("brokerctl truststore frobnicate x").unwrap().unwrap();
    assert!(Cli::try_parse_from(&unknown).is_err(), "a made-up subcommand must fail the check");
}
