//! What one refresh of the trust material tells an operator: which objects it could not use, and how long the
//! material in use still lasts (the `TrustRefreshFailures` count and the `TruststoreSecondsToExpiry` and
//! `CrlSecondsToNextUpdate` gauges of [`crate::metrics`]).

use std::time::SystemTime;

use tb_shared::telemetry::MetricsSink;

use crate::metrics::{self, trust_object};

/// Which trust objects one refresh could not use.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RefreshFailures {
    /// The truststore could not be read or was refused by the loader.
    pub truststore: bool,
    /// The CRL bundle could not be read or was refused by the loader.
    pub crl_read: bool,
    /// A CRL bundle was read and parsed but is not usable as it should be: a CRL in it was refused against the
    /// truststore (signature, issuer, rollback), or it arrived already past its nextUpdate.
    pub crl_refused: bool,
}

impl RefreshFailures {
    /// Failed reads (not refusals of content that was read): what `AuthorizerErrors` `trust_refresh_failed`
    /// counts.
    pub(super) fn reads(&self) -> u64 {
        u64::from(self.truststore) + u64::from(self.crl_read)
    }

    /// Writes one `TrustRefreshFailures` per object this refresh could not use, then the gauges of the material in
    /// use after it: the earliest CA `notAfter` of the truststore and the earliest `nextUpdate` of the CRLs in use
    /// (each left out when there is none).
    pub(super) fn report(
        &self,
        sink: &MetricsSink,
        now: SystemTime,
        truststore_expiry: Option<SystemTime>,
        crl_next_update: Option<SystemTime>,
    ) {
        if self.truststore {
            metrics::trust_refresh_failure(sink, trust_object::TRUSTSTORE);
        }
        if self.crl_read || self.crl_refused {
            metrics::trust_refresh_failure(sink, trust_object::CRL);
        }
        metrics::trust_gauges(sink, now, truststore_expiry, crl_next_update);
    }
}
