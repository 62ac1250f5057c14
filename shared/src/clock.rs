//! Wall-clock time as a dependency. Every check of a credential's times (JWT `exp`/`nbf`/`iat`, certificate
//! validity, CRL freshness, quota windows) reads the time through a [`Clock`], so tests pin it and
//! `brokerctl policy explain --at` asks "would this still pass then?" of every check, not only some.

use std::sync::Arc;
use std::time::SystemTime;

/// A source of the current wall-clock time.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> SystemTime + Send + Sync>);

impl Clock {
    /// The system clock (what the Lambda uses).
    pub fn system() -> Self {
        Clock(Arc::new(SystemTime::now))
    }

    /// A clock stopped at `at`.
    pub fn fixed(at: SystemTime) -> Self {
        Clock(Arc::new(move || at))
    }

    /// Any function of no arguments, e.g. a clock a test advances.
    pub fn from_fn(f: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    /// The current time by this clock.
    pub fn now(&self) -> SystemTime {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fixed_clock_does_not_move() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let c = Clock::fixed(at);
        assert_eq!(c.now(), at);
        assert_eq!(c.clone().now(), at);
        assert!(Clock::system().now() > at);
    }
}
