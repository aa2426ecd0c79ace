//! Environment overrides: the variables that set config keys after the files, so config
//! management can keep secrets and endpoints out of them. The environment is read through a
//! lookup function the caller passes (the process environment in the binary, a map in tests).

use super::error::{ConfigIssue, Location, Origin};
use super::file::FileConfig;
use super::secret::Secret;
use serde::Deserialize;
use std::ffi::OsString;
use toml::{Table, Value};

/// Each variable and the key it sets (documented in docs/configuration.md).
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("OUTPOST_AGENT_ID", "agent.id"),
    ("OUTPOST_HOSTNAME", "agent.hostname"),
    ("OUTPOST_STATE_DIR", "agent.state_dir"),
    ("OUTPOST_SINK_KIND", "sink.kind"),
    ("OUTPOST_SINK_URL", "sink.url"),
    ("OUTPOST_SINK_TOKEN_FILE", "sink.token_file"),
    ("OUTPOST_SINK_STREAM", "sink.stream"),
    ("OUTPOST_SINK_REGION", "sink.region"),
];

/// The sink's bearer token itself (there is no config key for it: a token belongs in a file
/// only through `sink.token_file`). When set it wins over `sink.token_file`.
pub const TOKEN_VAR: &str = "OUTPOST_SINK_TOKEN";

/// What the environment sets.
#[derive(Debug, Default)]
pub struct EnvOverrides {
    /// One layer for each variable set, in [`ENV_KEYS`] order, to merge after the files.
    pub layers: Vec<(&'static str, Table)>,
    /// The token from [`TOKEN_VAR`].
    pub token: Option<Secret>,
}

/// Read the overrides through `lookup`. A variable that is unset or set to the empty string is
/// ignored. Each value is checked like a file's (type, allowed values); a problem goes to
/// `issues`, naming the variable and the key.
pub fn read(
    lookup: &dyn Fn(&str) -> Option<OsString>,
    issues: &mut Vec<ConfigIssue>,
) -> EnvOverrides {
    let mut out = EnvOverrides::default();
    let mut issue = |name: &'static str, location: Location, message: String| {
        issues.push(ConfigIssue {
            origin: Origin::Env(name),
            location,
            message,
        });
    };
    let text =
        |name: &'static str, issue: &mut dyn FnMut(&'static str, Location, String)| match lookup(
            name,
        )?
        .into_string()
        {
            Ok(s) if s.is_empty() => None,
            Ok(s) => Some(s),
            Err(_) => {
                issue(name, Location::File, "is not valid UTF-8".to_owned());
                None
            }
        };
    for &(name, key) in ENV_KEYS {
        let Some(value) = text(name, &mut issue) else {
            continue;
        };
        let layer = layer_for(key, value);
        // The same check a file gets: right type, known values (`sink.kind`).
        if let Err(e) = FileConfig::deserialize(Value::Table(layer.clone())) {
            issue(name, Location::Key(key.to_owned()), e.message().to_owned());
            continue;
        }
        out.layers.push((name, layer));
    }
    if let Some(token) = text(TOKEN_VAR, &mut issue) {
        let token = token.trim();
        if token.is_empty() {
            issue(TOKEN_VAR, Location::File, "is only whitespace".to_owned());
        } else if token.chars().any(char::is_control) {
            // Not the value: it is a secret.
            issue(
                TOKEN_VAR,
                Location::File,
                "contains control characters".to_owned(),
            );
        } else {
            out.token = Some(Secret::new(token));
        }
    }
    out
}

/// `{section: {key: value}}` for a dotted key `section.key`.
fn layer_for(key: &str, value: String) -> Table {
    let mut parts = key.rsplit('.');
    let last = parts.next().unwrap_or(key);
    let leaf = Table::from_iter([(last.to_owned(), Value::String(value))]);
    parts.fold(leaf, |inner, part| {
        Table::from_iter([(part.to_owned(), Value::Table(inner))])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn every_variable_sets_its_key() {
        let vars: Vec<(&str, &str)> = ENV_KEYS
            .iter()
            .map(|(name, _)| (*name, "kinesis"))
            .collect();
        let mut issues = Vec::new();
        let env = read(&lookup(&vars), &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(env.layers.len(), ENV_KEYS.len());
        for ((name, layer), (expected_name, key)) in env.layers.iter().zip(ENV_KEYS) {
            assert_eq!(name, expected_name);
            let (section, field) = key.split_once('.').unwrap();
            assert_eq!(layer[section][field].as_str(), Some("kinesis"), "{key}");
        }
        assert_eq!(env.token, None);
    }

    #[test]
    fn unset_and_empty_variables_are_ignored() {
        let mut issues = Vec::new();
        let env = read(
            &lookup(&[("OUTPOST_SINK_URL", ""), (TOKEN_VAR, "")]),
            &mut issues,
        );
        assert!(issues.is_empty() && env.layers.is_empty() && env.token.is_none());
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_key() {
        let mut issues = Vec::new();
        let env = read(
            &lookup(&[("OUTPOST_SINK_KIND", "ftp"), ("OUTPOST_HOSTNAME", "web-1")]),
            &mut issues,
        );
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].origin, Origin::Env("OUTPOST_SINK_KIND"));
        assert_eq!(issues[0].location, Location::Key("sink.kind".into()));
        let shown = issues[0].to_string();
        assert!(
            shown.starts_with("environment OUTPOST_SINK_KIND: sink.kind: ")
                && shown.contains("ftp"),
            "{shown}"
        );
        // The good one still applies.
        assert_eq!(env.layers.len(), 1);
        assert_eq!(env.layers[0].0, "OUTPOST_HOSTNAME");
    }

    #[test]
    fn the_token_is_trimmed_and_never_shown() {
        let mut issues = Vec::new();
        let env = read(&lookup(&[(TOKEN_VAR, " s3cret\n")]), &mut issues);
        assert_eq!(env.token.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(issues.is_empty());

        let env = read(&lookup(&[(TOKEN_VAR, "bad\u{7}token")]), &mut issues);
        assert!(env.token.is_none());
        assert_eq!(issues.len(), 1);
        let shown = issues[0].to_string();
        assert_eq!(
            shown,
            "environment OUTPOST_SINK_TOKEN: contains control characters"
        );
    }

    #[test]
    fn every_variable_is_documented_and_named_in_the_example_config() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let docs = std::fs::read_to_string(format!("{root}/docs/configuration.md")).unwrap();
        let example = std::fs::read_to_string(format!("{root}/packaging/agent.toml")).unwrap();
        for (name, key) in ENV_KEYS {
            let row = format!("| `{name}` | `{key}` |");
            assert!(docs.contains(&row), "docs/configuration.md lacks {row}");
            assert!(example.contains(name), "packaging/agent.toml lacks {name}");
        }
        assert!(docs.contains(&format!("| `{TOKEN_VAR}` | the bearer token itself")));
        assert!(example.contains(TOKEN_VAR));
    }

    #[test]
    fn non_utf8_values_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0x66, 0xff]);
        let mut issues = Vec::new();
        let env = read(
            &move |k: &str| (k == "OUTPOST_STATE_DIR").then(|| bad.clone()),
            &mut issues,
        );
        assert!(env.layers.is_empty());
        assert_eq!(
            issues[0].to_string(),
            "environment OUTPOST_STATE_DIR: is not valid UTF-8"
        );
    }
}
