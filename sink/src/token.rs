//! The shared bearer token: loaded from a file, compared in constant time, never printed.

use std::fmt;
use std::path::Path;

use crate::error::ConfigError;

/// A bearer token clients must present. `Debug` does not reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Box<[u8]>);

impl Token {
    /// A token from text, surrounding whitespace trimmed; `None` when nothing remains.
    pub fn new(text: &str) -> Option<Self> {
        let trimmed = text.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.as_bytes().into()))
    }

    /// Read a token file (surrounding whitespace trimmed). An unreadable, non-UTF-8 or empty
    /// file is an error naming the file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFileUnreadable {
                path: path.to_path_buf(),
                source,
            })?;
        Self::new(&text).ok_or_else(|| ConfigError::TokenFileEmpty {
            path: path.to_path_buf(),
        })
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`. The scheme is
    /// case-insensitive; the token comparison takes time independent of where they differ.
    pub fn matches_authorization(&self, header: &[u8]) -> bool {
        const SCHEME: &[u8] = b"bearer ";
        match header.split_at_checked(SCHEME.len()) {
            Some((scheme, presented)) if scheme.eq_ignore_ascii_case(SCHEME) => {
                constant_time_eq(&self.0, presented)
            }
            _ => false,
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Compare `secret` with `presented` touching every byte of `secret` whatever the input, so the
/// time taken reveals only the secret's length, not how much of it was guessed right.
fn constant_time_eq(secret: &[u8], presented: &[u8]) -> bool {
    let mut diff = u8::from(secret.len() != presented.len());
    for (i, s) in secret.iter().enumerate() {
        let p = presented.get(i).copied().unwrap_or(!s);
        diff |= std::hint::black_box(s ^ p);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let token = Token::new("  s3cret\n").unwrap();
        assert!(token.matches_authorization(b"Bearer s3cret"));
        assert!(token.matches_authorization(b"bearer s3cret"));
        assert!(!token.matches_authorization(b"Bearer s3cre"));
        assert!(!token.matches_authorization(b"Bearer s3cretX"));
        assert!(!token.matches_authorization(b"Bearer S3cret"));
        assert!(!token.matches_authorization(b"Basic s3cret"));
        assert!(!token.matches_authorization(b"s3cret"));
        assert!(!token.matches_authorization(b""));
    }

    #[test]
    fn blank_text_is_no_token() {
        assert!(Token::new(" \n\t").is_none());
    }

    #[test]
    fn file_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = tmp.path().join("empty");
        std::fs::write(&empty, "\n  \n").unwrap();
        let error = Token::from_file(&empty).unwrap_err();
        assert!(error.to_string().contains(&*empty.to_string_lossy()));
        let missing = tmp.path().join("missing");
        let error = Token::from_file(&missing).unwrap_err();
        assert!(error.to_string().contains(&*missing.to_string_lossy()));
        std::fs::write(&empty, "tok\n").unwrap();
        assert_eq!(
            Token::from_file(&empty).unwrap(),
            Token::new("tok").unwrap()
        );
    }

    #[test]
    fn debug_does_not_leak() {
        assert_eq!(
            format!("{:?}", Token::new("s3cret").unwrap()),
            "Token(<redacted>)"
        );
    }
}
