//! Reading an HTTP response body from a server we do not control (a partner's JWKS endpoint, Cognito) with a hard
//! size limit: a misbehaving or hostile peer must not make a 128 MB function buffer an unbounded body.

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The client's timeout fired while reading.
    Timeout,
    /// The connection failed while reading.
    Io,
    /// The body is longer than the limit (by its `Content-Length` or by what arrived).
    TooLarge,
}

/// Reads `resp`'s body, refusing more than `max` bytes before buffering them.
pub async fn read_capped(resp: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() + c.len() > max {
                    return Err(BodyError::TooLarge);
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) if e.is_timeout() => return Err(BodyError::Timeout),
            Err(_) => return Err(BodyError::Io),
        }
    }
}
