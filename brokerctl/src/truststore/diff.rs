//! `brokerctl truststore diff`: which CAs two bundles add and remove, by SHA-256 fingerprint.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{fingerprint, read_pem_certs};
use crate::exit::Exit;

/// One side of a diff entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    pub sha256: String,
    pub subject: String,
}

/// Certificates added to and removed from a bundle, by SHA-256 fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub added: Vec<DiffEntry>,
    pub removed: Vec<DiffEntry>,
    pub unchanged: usize,
}

impl Diff {
    /// `diff(1)`'s convention: [`Exit::Ok`] (0) identical, [`Exit::Findings`] (1) different.
    pub fn exit_code(&self) -> Exit {
        if self.added.is_empty() && self.removed.is_empty() {
            Exit::Ok
        } else {
            Exit::Findings
        }
    }

    /// `+`/`-` lines with fingerprint and subject, then a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.removed {
            let _ = writeln!(out, "- {}  {}", e.sha256, e.subject);
        }
        for e in &self.added {
            let _ = writeln!(out, "+ {}  {}", e.sha256, e.subject);
        }
        let _ =
            writeln!(out, "{} added, {} removed, {} unchanged", self.added.len(), self.removed.len(), self.unchanged);
        out
    }
}

fn entries(bytes: &[u8], name: &str) -> Result<BTreeMap<String, String>, String> {
    let ders = read_pem_certs(bytes).map_err(|f| {
        let msgs: Vec<String> = f.into_iter().map(|f| f.message).collect();
        format!("{name}: {}", msgs.join("; "))
    })?;
    let mut out = BTreeMap::new();
    for (i, der) in ders.iter().enumerate() {
        let subject = match x509_parser::parse_x509_certificate(der) {
            Ok((_, c)) => c.subject().to_string(),
            Err(_) => return Err(format!("{name}: certificate {} does not parse", i + 1)),
        };
        out.insert(fingerprint(der), subject);
    }
    Ok(out)
}

/// Compares two PEM bundles.
pub fn diff_bundles(old: &[u8], new: &[u8]) -> Result<Diff, String> {
    let a = entries(old, "old bundle")?;
    let b = entries(new, "new bundle")?;
    let mut d = Diff::default();
    for (fp, subject) in &a {
        if b.contains_key(fp) {
            d.unchanged += 1;
        } else {
            d.removed.push(DiffEntry { sha256: fp.clone(), subject: subject.clone() });
        }
    }
    for (fp, subject) in &b {
        if !a.contains_key(fp) {
            d.added.push(DiffEntry { sha256: fp.clone(), subject: subject.clone() });
        }
    }
    Ok(d)
}
