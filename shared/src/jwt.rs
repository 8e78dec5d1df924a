//! Engine API authentication: the shared 32-byte secret and HS256 tokens.
//!
//! Per the Engine API spec the only required claim is `iat`, which must lie within ±60 s of the
//! verifier's clock; other claims (e.g. `clv`, `id`) are ignored. Only HS256 is accepted.

use std::{
    fs,
    io::Write,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

use alloy_rpc_types_engine::{Claims, JwtSecret};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::Deserialize;

/// How far `iat` may be from the verifier's clock, in seconds.
pub const MAX_IAT_SKEW_SECS: u64 = 60;

/// Failure to read or create a secret file.
#[derive(Debug, thiserror::Error)]
pub enum JwtSecretError {
    /// The file could not be read or written.
    #[error("JWT secret file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not hold 32 bytes of hex.
    #[error("JWT secret file {path}: expected 32 bytes as hex (64 hex digits, optional 0x): {msg}")]
    Invalid {
        /// The file.
        path: String,
        /// What was wrong.
        msg: String,
    },
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts with a JSON header and claims.
    #[error("malformed JWT: {0}")]
    Malformed(String),
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("unsupported JWT algorithm {0:?}: only HS256 is accepted")]
    UnsupportedAlgorithm(String),
    /// The signature does not match the shared secret.
    #[error("invalid JWT signature")]
    InvalidSignature,
    /// The token has no `iat` claim.
    #[error("JWT has no iat claim")]
    MissingIat,
    /// `iat` is more than 60 s away from now.
    #[error("stale JWT: iat {iat} is more than {MAX_IAT_SKEW_SECS}s from now ({now})")]
    StaleIat {
        /// The token's issued-at time.
        iat: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// The optional `exp` claim has passed.
    #[error("JWT expired at {exp} (now {now})")]
    Expired {
        /// The token's expiry.
        exp: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// Signing failed.
    #[error("cannot sign JWT: {0}")]
    Sign(String),
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Parses a secret: 64 hex digits, optional `0x`, surrounding whitespace tolerated.
pub fn parse_secret(text: &str) -> Result<JwtSecret, String> {
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").or_else(|| hex.strip_prefix("0X")).unwrap_or(hex);
    if hex.len() != 64 {
        return Err(format!("found {} hex digits", hex.len()));
    }
    JwtSecret::from_hex(hex).map_err(|e| e.to_string())
}

/// Reads a secret file; it must exist.
pub fn read_secret(path: &Path) -> Result<JwtSecret, JwtSecretError> {
    let text = fs::read_to_string(path)
        .map_err(|source| JwtSecretError::Io { path: path.display().to_string(), source })?;
    parse_secret(&text)
        .map_err(|msg| JwtSecretError::Invalid { path: path.display().to_string(), msg })
}

/// Reads a secret file, creating it (mode 0600, random secret) if missing; `true` if created.
pub fn read_or_create_secret(path: &Path) -> Result<(JwtSecret, bool), JwtSecretError> {
    if path.exists() {
        return read_secret(path).map(|s| (s, false));
    }
    let io = |source| JwtSecretError::Io { path: path.display().to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let secret = JwtSecret::random();
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(hex::encode(secret.as_bytes()).as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok((secret, true))
}

/// Issues an HS256 token with `iat = now`.
pub fn issue_token(secret: &JwtSecret, now: u64) -> Result<String, JwtError> {
    let claims = Claims { iat: now, exp: None };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| JwtError::Sign(e.to_string()))
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    iat: Option<u64>,
    exp: Option<u64>,
}

/// Verifies a token against the secret and the clock `now` (seconds).
pub fn verify_token(secret: &JwtSecret, token: &str, now: u64) -> Result<(), JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts".into()));
    };
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|e| JwtError::Malformed(format!("header is not base64url: {e}")))?;
    let header: RawHeader = serde_json::from_slice(&header)
        .map_err(|e| JwtError::Malformed(format!("header is not JSON: {e}")))?;
    match header.alg.as_deref() {
        Some("HS256") => {}
        other => {
            return Err(JwtError::UnsupportedAlgorithm(other.unwrap_or("<missing>").to_string()));
        }
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<RawClaims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => JwtError::InvalidSignature,
        ErrorKind::InvalidAlgorithm => JwtError::UnsupportedAlgorithm("?".into()),
        _ => JwtError::Malformed(e.to_string()),
    })?;
    let iat = data.claims.iat.ok_or(JwtError::MissingIat)?;
    if iat.abs_diff(now) > MAX_IAT_SKEW_SECS {
        return Err(JwtError::StaleIat { iat, now });
    }
    if let Some(exp) = data.claims.exp
        && exp < now
    {
        return Err(JwtError::Expired { exp, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn secret() -> JwtSecret {
        parse_secret(&"11".repeat(32)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn valid_token_round_trips() {
        let now = 1_700_000_000;
        let token = issue_token(&secret(), now).unwrap_or_default();
        assert_eq!(verify_token(&secret(), &token, now), Ok(()));
        assert_eq!(verify_token(&secret(), &token, now + 60), Ok(()));
        assert_eq!(verify_token(&secret(), &token, now - 60), Ok(()));
    }

    #[test]
    fn stale_and_future_iat_are_refused() {
        let now = 1_700_000_000;
        let old = issue_token(&secret(), now - 61).unwrap_or_default();
        assert_eq!(
            verify_token(&secret(), &old, now),
            Err(JwtError::StaleIat { iat: now - 61, now })
        );
        let future = issue_token(&secret(), now + 61).unwrap_or_default();
        assert_eq!(
            verify_token(&secret(), &future, now),
            Err(JwtError::StaleIat { iat: now + 61, now })
        );
    }

    #[test]
    fn wrong_secret_is_invalid_signature() {
        let now = 1_700_000_000;
        let token = issue_token(&JwtSecret::random(), now).unwrap_or_default();
        assert_eq!(verify_token(&secret(), &token, now), Err(JwtError::InvalidSignature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let now = 1_700_000_000u64;
        let claims = b64(format!("{{\"iat\":{now}}}").as_bytes());
        let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), claims);
        assert_eq!(
            verify_token(&secret(), &none, now),
            Err(JwtError::UnsupportedAlgorithm("none".into()))
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims { iat: now, exp: None },
            &EncodingKey::from_secret(secret().as_bytes()),
        )
        .unwrap_or_default();
        assert_eq!(
            verify_token(&secret(), &hs512, now),
            Err(JwtError::UnsupportedAlgorithm("HS512".into()))
        );
    }

    #[test]
    fn unknown_claims_are_ignored_and_missing_iat_is_refused() {
        let now = 1_700_000_000u64;
        let key = EncodingKey::from_secret(secret().as_bytes());
        let with_clv = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "iat": now, "clv": "Lighthouse/v5", "id": "cl-1" }),
            &key,
        )
        .unwrap_or_default();
        assert_eq!(verify_token(&secret(), &with_clv, now), Ok(()));
        let no_iat = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({ "id": "x" }),
            &key,
        )
        .unwrap_or_default();
        assert_eq!(verify_token(&secret(), &no_iat, now), Err(JwtError::MissingIat));
        assert!(matches!(verify_token(&secret(), "abc", now), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn secret_files() -> Result<(), JwtSecretError> {
        let dir = tempfile::tempdir()
            .map_err(|source| JwtSecretError::Io { path: "tmp".into(), source })?;
        let path = dir.path().join("sub").join("jwt.hex");
        let (created, was_created) = read_or_create_secret(&path)?;
        assert!(was_created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        let (again, was_created) = read_or_create_secret(&path)?;
        assert!(!was_created);
        assert_eq!(created, again);

        let with_prefix = dir.path().join("prefixed.hex");
        fs::write(&with_prefix, format!("  0x{}\n\n", "ab".repeat(32)))
            .map_err(|source| JwtSecretError::Io { path: "tmp".into(), source })?;
        assert_eq!(read_secret(&with_prefix)?.as_bytes(), &[0xab; 32]);

        let short = dir.path().join("short.hex");
        fs::write(&short, "abcd")
            .map_err(|source| JwtSecretError::Io { path: "tmp".into(), source })?;
        assert!(matches!(read_secret(&short), Err(JwtSecretError::Invalid { .. })));
        assert!(matches!(read_secret(&dir.path().join("missing")), Err(JwtSecretError::Io { .. })));
        Ok(())
    }
}
