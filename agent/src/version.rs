//! The agent's version and the commit it was built from (set by `build.rs`).

/// The git commit of the build: `OUTPOST_BUILD_COMMIT` at build time, else the checkout's
/// `HEAD` (12 hex digits), else `unknown`.
pub const COMMIT: &str = env!("OUTPOST_COMMIT");

/// `0.1.0 (commit 1a2b3c4d5e6f)`: what `outpost-agent --version` prints after the name.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("OUTPOST_COMMIT"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_the_version_and_the_commit() {
        assert_eq!(
            LONG,
            format!("{} (commit {COMMIT})", env!("CARGO_PKG_VERSION"))
        );
        assert!(!COMMIT.is_empty());
    }
}
