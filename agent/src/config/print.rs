//! `check-config --print`: the effective config as TOML, with where it came from in comments
//! and secrets redacted.

use super::env::TOKEN_VAR;
use super::load::Loaded;

/// What stands in for a secret.
pub const REDACTED: &str = "REDACTED";

impl Loaded {
    /// The effective config (every default filled in) as TOML that parses as a config file:
    /// comments name the files merged and the keys the environment set. The sink token is
    /// never shown, nor a password in `sink.url`.
    pub fn effective_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.effective.clone();
        if let Some(url) = &shown.sink.url
            && let Ok(mut u) = url::Url::parse(url)
            && u.password().is_some()
            && u.set_password(Some(REDACTED)).is_ok()
        {
            shown.sink.url = Some(u.to_string());
        }
        let mut out = String::from(
            "# outpost-agent: the effective configuration (defaults filled in), merged from\n",
        );
        for f in &self.files {
            out += &format!("#   {}\n", f.display());
        }
        if !self.from_env.is_empty() || self.token_from_env {
            out += "# and the environment:\n";
            for (key, name) in &self.from_env {
                out += &format!("#   {key} = {name}\n");
            }
        }
        if self.token_from_env {
            // The token is not a key: `sink.token_file` is ignored while it is set.
            shown.sink.token_file = None;
            out += &format!(
                "#   the sink token = {TOKEN_VAR} ({REDACTED}; sink.token_file is not read)\n"
            );
        }
        out += &toml::to_string_pretty(&shown)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_layered;
    use std::ffi::OsString;

    #[test]
    fn the_printed_config_parses_again_and_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("agent.toml");
        std::fs::write(
            &main,
            "[[logs]]\npaths = [\"/l/*.log\"]\nservice = \"a\"\nmax_line_bytes = 4096\n[logs.multiline]\nstart_pattern = '^\\d'\n[sink]\nkind = \"http\"\nurl = \"http://x\"\ntoken_file = \"/nonexistent\"\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "OUTPOST_SINK_URL" => Some(OsString::from("https://user:hunter2@sink.example.com/")),
            "OUTPOST_SINK_TOKEN" => Some(OsString::from("s3cret-token")),
            "OUTPOST_AGENT_ID" => Some(OsString::from("agent-7")),
            _ => None,
        };
        let loaded = load_layered(&main, &env).unwrap();
        let text = loaded.effective_toml().unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret-token"),
            "{text}"
        );
        assert!(text.contains("#   sink.url = OUTPOST_SINK_URL\n"), "{text}");
        assert!(text.contains("#   agent.id = OUTPOST_AGENT_ID\n"), "{text}");
        assert!(
            text.contains("#   the sink token = OUTPOST_SINK_TOKEN (REDACTED"),
            "{text}"
        );
        assert!(
            text.contains(&format!("#   {}\n", main.display())),
            "{text}"
        );

        // It is a config file: the same values, defaults included.
        let reparsed = crate::config::parse(&text).unwrap();
        assert_eq!(reparsed.agent.id.as_deref(), Some("agent-7"));
        assert_eq!(reparsed.agent.shutdown_timeout, "10s");
        assert_eq!(reparsed.host.interval, "10s");
        assert_eq!(reparsed.logs.len(), 1);
        assert_eq!(
            reparsed.logs[0].multiline.as_ref().unwrap().start_pattern,
            "^\\d"
        );
        assert_eq!(
            reparsed.sink.url.as_deref(),
            Some("https://user:REDACTED@sink.example.com/")
        );
        assert_eq!(reparsed.sink.token_file, None);
    }
}
