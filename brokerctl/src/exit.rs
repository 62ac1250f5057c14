//! The exit codes of every `brokerctl` command, in one place so a script can rely on them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 [`Exit::Ok`] | success: the policy is valid or the credential allowed, a bundle has no findings, two bundles are identical, a publish drew no warnings |
//! | 1 [`Exit::Findings`] | done, but look: a bundle has warnings only, two bundles differ, API Gateway warned about a published truststore |
//! | 2 [`Exit::Error`] | failed or refused: unreadable input, a bundle with errors, an invalid policy, a failed publish or start |
//! | 3 [`Exit::Deny`] | `policy explain`: the authorizer would answer an explicit Deny (403) |
//! | 4 [`Exit::Unauthorized`] | `policy explain`: the authorizer would answer `Unauthorized` (401) |
//! | 64 [`Exit::Usage`] | bad command line (BSD sysexits `EX_USAGE`), kept apart so a script can tell "bad invocation" from "bad bundle" |

/// A `brokerctl` exit code; see the [module documentation](self) for what each means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Exit {
    /// 0: success, nothing to report.
    Ok = 0,
    /// 1: done, with findings that do not block (warnings, a difference).
    Findings = 1,
    /// 2: failed, or refused because of errors.
    Error = 2,
    /// 3: `policy explain` decided Deny (403).
    Deny = 3,
    /// 4: `policy explain` decided Unauthorized (401).
    Unauthorized = 4,
    /// 64: the command line could not be used.
    Usage = 64,
}

impl Exit {
    /// Every exit code.
    pub const ALL: [Exit; 6] = [Exit::Ok, Exit::Findings, Exit::Error, Exit::Deny, Exit::Unauthorized, Exit::Usage];

    /// The numeric process exit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit code with this number, if there is one.
    pub fn from_code(code: i32) -> Option<Exit> {
        Self::ALL.into_iter().find(|e| i32::from(e.code()) == code)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for e in Exit::ALL {
            assert_eq!(Exit::from_code(i32::from(e.code())), Some(e));
        }
        assert_eq!(Exit::from_code(5), None);
        assert_eq!(Exit::from_code(-1), None);
    }
}
