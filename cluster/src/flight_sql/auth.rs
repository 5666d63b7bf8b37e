//! Who may talk to the Flight SQL endpoint: one bearer token, checked on every call.
//!
//! The token comes from a file or an environment variable, never from the command line (where `ps`
//! would show it) and never into a log line. A server bound to anything but loopback refuses to
//! start without one, because Flight SQL can write tables (CTAS, INSERT, MERGE) and read the whole
//! lake. The comparison takes the same time for every wrong token of the same length, so response
//! times tell an attacker nothing about how much of a guess was right.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};
use tonic::{Request, Status};

/// The secret clients present as `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token from its text; surrounding whitespace (a file's trailing newline) is dropped.
    pub fn new(secret: &str) -> Result<Self> {
        let secret = secret.trim();
        if secret.len() < 16 {
            bail!("a Flight SQL token must be at least 16 characters (got {}); generate one with `openssl rand -hex 32`", secret.len());
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            bail!("a Flight SQL token cannot contain whitespace or control characters");
        }
        Ok(Self(secret.to_string()))
    }

    /// Reads a token file (the whole file, trimmed).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the Flight SQL token file {}", path.display()))?;
        Self::new(&text).with_context(|| format!("in token file {}", path.display()))
    }

    /// A fresh random token (for servers a job script talks to for the length of one run).
    pub fn random() -> Self {
        Self(format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()))
    }

    /// The secret, for handing to a child process's environment.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether an `authorization` header value carries this token.
    fn accepts(&self, header: &[u8]) -> bool {
        let Some(presented) = strip_bearer(header) else { return false };
        constant_time_eq(presented, self.0.as_bytes())
    }
}

fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    let prefix = b"bearer ";
    if header.len() < prefix.len() || !header[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    Some(header[prefix.len()..].trim_ascii())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses an unauthenticated server anywhere but loopback.
pub fn check_bind(addr: SocketAddr, token: Option<&BearerToken>) -> Result<()> {
    if token.is_none() && !addr.ip().is_loopback() {
        bail!(
            "refusing to serve Flight SQL on {addr} without authentication: anyone who can reach it could read \
             and write the lake. Give a token with --token-file FILE or BACKBEAT_FLIGHT_TOKEN, or bind to 127.0.0.1"
        );
    }
    Ok(())
}

/// The tonic interceptor: every call carries the token, or fails UNAUTHENTICATED before any
/// handler (and so any planning or execution) runs.
#[derive(Clone)]
pub struct TokenCheck(pub Option<BearerToken>);

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let Some(token) = &self.0 else { return Ok(request) };
        match request.metadata().get("authorization") {
            Some(value) if token.accepts(value.as_bytes()) => Ok(request),
            Some(_) => {
                tracing::warn!(peer = ?request.remote_addr(), "Flight SQL call refused: wrong token");
                Err(Status::unauthenticated("invalid bearer token"))
            }
            None => {
                tracing::warn!(peer = ?request.remote_addr(), "Flight SQL call refused: no authorization header");
                Err(Status::unauthenticated(
                    "this server needs `authorization: Bearer <token>` (ADBC: db_kwargs={\"adbc.flight.sql.authorization_header\": \"Bearer ...\"})",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_matching() {
        let token = BearerToken::new("0123456789abcdef-secret\n").unwrap();
        assert!(token.accepts(b"Bearer 0123456789abcdef-secret"));
        assert!(token.accepts(b"bearer 0123456789abcdef-secret "));
        assert!(!token.accepts(b"Bearer 0123456789abcdef-secreT"));
        assert!(!token.accepts(b"Basic 0123456789abcdef-secret"));
        assert!(!token.accepts(b"Bearer "));
        assert!(BearerToken::new("short").is_err());
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
    }

    #[test]
    fn open_servers_only_on_loopback() {
        assert!(check_bind("127.0.0.1:1".parse().unwrap(), None).is_ok());
        assert!(check_bind("[::1]:1".parse().unwrap(), None).is_ok());
        let err = check_bind("0.0.0.0:1".parse().unwrap(), None).unwrap_err().to_string();
        assert!(err.contains("--token-file"), "{err}");
        assert!(check_bind("0.0.0.0:1".parse().unwrap(), Some(&BearerToken::random())).is_ok());
    }
}
