//! Loading the config: the main file, then the drop-ins of `agent.d/` next to it in byte order
//! of their names, then the environment; each checked on its own, merged (`merge`), then
//! checked as a whole (`validate`). The file reading of config loading happens here.

use super::env::{self, TOKEN_VAR};
use super::error::{ConfigError, ConfigIssue, Location, Origin};
use super::file::FileConfig;
use super::merge::Merged;
use super::resolved::Config;
use super::validate::validate_merged;
use serde::Deserialize;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The drop-in directory's name, beside the main file.
pub const DROPIN_DIR: &str = "agent.d";

/// A loaded config and what it was made of.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The checked config.
    pub config: Config,
    /// The files read, in order: the main file, then the drop-ins.
    pub files: Vec<PathBuf>,
    /// Keys the environment set, with the variable (`("sink.url", "OUTPOST_SINK_URL")`).
    pub from_env: Vec<(String, &'static str)>,
    /// Whether the sink token came from `OUTPOST_SINK_TOKEN`.
    pub token_from_env: bool,
    /// The merged config with every default filled in, as a file would say it (for
    /// `check-config --print`; it may hold secrets: render it with `Loaded::effective_toml`).
    pub effective: FileConfig,
}

/// `agent.d` in the directory of `main`.
pub fn dropin_dir(main: &Path) -> PathBuf {
    main.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(DROPIN_DIR)
}

/// Load `main`, the drop-ins in `agent.d/` beside it, and the overrides `env` gives (a lookup
/// of environment variables). Every problem is reported, each naming its file or variable.
pub fn load_layered(
    main: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Loaded, ConfigError> {
    load_from(main, &dropin_dir(main), env)
}

/// [`load_layered`] with the drop-ins taken from `dropins`.
pub fn load_from(
    main: &Path,
    dropins: &Path,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Loaded, ConfigError> {
    let mut issues = Vec::new();
    let mut files = vec![main.to_path_buf()];
    match list_dropins(dropins) {
        Ok(found) => files.extend(found),
        Err(message) => issues.push(ConfigIssue {
            origin: Origin::File(dropins.to_path_buf()),
            location: Location::File,
            message,
        }),
    }
    let mut merged = Merged::default();
    for file in &files {
        let origin = Origin::File(file.clone());
        let issue = |location, message| ConfigIssue {
            origin: origin.clone(),
            location,
            message,
        };
        match std::fs::read_to_string(file) {
            Ok(text) => match parse_layer(&text) {
                Ok(layer) => merged.apply(layer, &origin),
                Err((location, message)) => issues.push(issue(location, message)),
            },
            Err(e) => issues.push(issue(
                Location::File,
                format!("cannot read config file: {e}"),
            )),
        }
    }
    let overrides = env::read(env, &mut issues);
    for (name, layer) in overrides.layers {
        merged.apply(layer, &Origin::Env(name));
    }
    if !issues.is_empty() {
        // Problems of form (syntax, unknown keys, types): checking meaning would only repeat
        // them.
        return Err(ConfigError { issues });
    }
    // Each layer parsed on its own, so the merge does too; should it not, say so.
    let effective =
        FileConfig::deserialize(toml::Value::Table(merged.table.clone())).map_err(|e| {
            ConfigError {
                issues: vec![ConfigIssue {
                    origin: Origin::File(main.to_path_buf()),
                    location: Location::File,
                    message: format!("the merged configuration: {}", e.message()),
                }],
            }
        })?;
    let config = validate_merged(effective.clone(), main, &merged, overrides.token.as_ref())?;
    Ok(Loaded {
        config,
        files,
        from_env: merged
            .from_env()
            .map(|(key, name)| (key.to_owned(), name))
            .collect(),
        token_from_env: overrides.token.is_some(),
        effective,
    })
}

/// Parse one file: it must be valid on its own (known keys, right types; `parse` reports the
/// line and column), then as a table to merge.
fn parse_layer(text: &str) -> Result<toml::Table, (Location, String)> {
    super::parse(text)?;
    text.parse::<toml::Table>()
        .map_err(|e| (Location::File, e.message().to_owned()))
}

/// The drop-in files in `dir`: names ending in `.toml` and not starting with `.`, that are not
/// directories, in byte order of their names. A missing directory has none.
fn list_dropins(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the drop-in directory: {e}")),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read the drop-in directory: {e}"))?;
        let name = entry.file_name();
        // Follows symlinks; a dangling one is kept, and reading it reports the problem.
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        if is_dropin_name(&name) && !is_dir {
            names.push(name);
        }
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// `*.toml`, not hidden (editors' and package managers' leftovers are hidden or end
/// otherwise: `.#x.toml`, `x.toml.swp`, `x.toml.dpkg-dist`, `x.toml.rpmnew`).
fn is_dropin_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.len() > ".toml".len() && b.ends_with(b".toml") && !b.starts_with(b".")
}

impl Loaded {
    /// The environment variables that were used (names only: values may be secret).
    pub fn env_vars(&self) -> Vec<&'static str> {
        let mut vars: Vec<&'static str> = self.from_env.iter().map(|(_, name)| *name).collect();
        if self.token_from_env {
            vars.push(TOKEN_VAR);
        }
        vars
    }

    /// Lines for stderr: the files read and the environment variables used.
    pub fn summary(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("read {}", f.display()))
            .collect();
        let vars = self.env_vars();
        if !vars.is_empty() {
            lines.push(format!("environment: {}", vars.join(", ")));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    const MAIN: &str = "[agent]\nstate_dir = \"state\"\n[[logs]]\npaths = [\"/var/log/a/*.log\"]\nservice = \"a\"\n[sink]\nkind = \"http\"\nurl = \"http://127.0.0.1:7070\"\n";

    struct Dir {
        dir: tempfile::TempDir,
    }

    impl Dir {
        fn new(main: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("agent.toml"), main).unwrap();
            Self { dir }
        }
        fn main(&self) -> PathBuf {
            self.dir.path().join("agent.toml")
        }
        fn dropin(&self, name: &str, text: &str) -> PathBuf {
            let d = self.dir.path().join(DROPIN_DIR);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), text).unwrap();
            d.join(name)
        }
    }

    #[test]
    fn dropin_names_are_filtered_and_sorted_by_bytes() {
        let d = Dir::new(MAIN);
        for name in [
            "b.toml",
            "10-x.toml",
            "A.toml",
            "9.toml",
            ".hidden.toml",
            "x.toml.dpkg-dist",
            "notes.txt",
            ".toml",
        ] {
            d.dropin(name, "");
        }
        std::fs::create_dir(d.dir.path().join("agent.d/dir.toml")).unwrap();
        let names: Vec<String> = list_dropins(&d.dir.path().join(DROPIN_DIR))
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-x.toml", "9.toml", "A.toml", "b.toml"]);
        assert_eq!(list_dropins(&d.dir.path().join("missing")), Ok(vec![]));
        let not_a_dir = list_dropins(&d.main()).unwrap_err();
        assert!(
            not_a_dir.contains("cannot read the drop-in directory"),
            "{not_a_dir}"
        );
    }

    #[test]
    fn dropins_merge_after_the_main_file_and_append_logs() {
        let d = Dir::new(MAIN);
        let a = d.dropin(
            "10-app.toml",
            "[[logs]]\npaths = [\"/var/log/b/*.log\"]\nservice = \"b\"\n[batch]\nmax_age = \"1s\"\n",
        );
        d.dropin(
            "20-sink.toml",
            "[sink]\nurl = \"http://10.0.0.1:7070\"\n[batch]\nmax_age = \"2s\"\n",
        );
        let l = load_layered(&d.main(), &no_env).unwrap();
        assert_eq!(l.files.len(), 3);
        assert_eq!(l.files[1], a);
        let services: Vec<&str> = l.config.logs.iter().map(|i| i.service.as_str()).collect();
        assert_eq!(services, ["a", "b"]);
        assert_eq!(l.config.batch.max_age, std::time::Duration::from_secs(2));
        assert_eq!(l.config.sink.describe(), "http://10.0.0.1:7070/");
        // Relative paths resolve against the main file's directory, wherever they are set.
        assert_eq!(l.config.agent.state_dir, d.dir.path().join("state"));
        assert!(l.from_env.is_empty() && !l.token_from_env);
    }

    #[test]
    fn errors_name_the_dropin_that_set_the_key() {
        let d = Dir::new(MAIN);
        let bad = d.dropin(
            "50-bad.toml",
            "[host]\ninterval = \"often\"\n[[logs]]\npaths = []\nservice = \"c\"\n",
        );
        let err = load_layered(&d.main(), &no_env).unwrap_err();
        let shown: Vec<String> = err.issues.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{err}");
        let prefix = format!(
            "{}: host.interval: invalid duration \"often\"",
            bad.display()
        );
        assert!(shown[0].starts_with(&prefix), "{err}");
        assert_eq!(
            shown[1],
            format!(
                "{}: logs[1].paths: must list at least one glob",
                bad.display()
            )
        );
    }

    #[test]
    fn unknown_keys_in_a_dropin_name_it_with_line_and_column() {
        let d = Dir::new(MAIN);
        let bad = d.dropin("10.toml", "[batch]\nmax_age = \"1s\"\ncolour = \"blue\"\n");
        let other = d.dropin("20.toml", "[sink]\nurl = 5\n");
        let err = load_layered(&d.main(), &no_env).unwrap_err();
        assert_eq!(err.issues.len(), 2, "{err}");
        assert_eq!(err.issues[0].origin, Origin::File(bad));
        assert_eq!(
            err.issues[0].location,
            Location::Line { line: 3, column: 1 }
        );
        assert!(err.issues[0].message.contains("colour"), "{err}");
        assert_eq!(err.issues[1].origin, Origin::File(other));
        assert!(
            matches!(err.issues[1].location, Location::Line { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_dropin_need_not_be_complete_but_the_merge_must_be() {
        // The sink in a drop-in only.
        let d = Dir::new("[host]\nenabled = false\n");
        let err = load_layered(&d.main(), &no_env).unwrap_err();
        assert_eq!(err.issues.len(), 1);
        assert_eq!(err.issues[0].origin, Origin::File(d.main()));
        assert_eq!(err.issues[0].location, Location::Key("sink.kind".into()));
        d.dropin("sink.toml", "[sink]\nkind = \"kinesis\"\nstream = \"s\"\n");
        let l = load_layered(&d.main(), &no_env).unwrap();
        assert_eq!(l.config.sink.describe(), "kinesis:s");
    }

    #[test]
    fn the_environment_wins_over_files_and_its_errors_name_the_variable() {
        let d = Dir::new(MAIN);
        d.dropin("10.toml", "[agent]\nhostname = \"from-dropin\"\n");
        let vars: HashMap<&str, &str> = [
            ("OUTPOST_HOSTNAME", "from-env"),
            ("OUTPOST_SINK_URL", "https://sink.example.com"),
            ("OUTPOST_SINK_TOKEN", "s3cret"),
            ("OUTPOST_STATE_DIR", "/var/lib/other"),
        ]
        .into();
        let env = move |k: &str| vars.get(k).map(OsString::from);
        let l = load_layered(&d.main(), &env).unwrap();
        assert_eq!(l.config.agent.hostname.as_deref(), Some("from-env"));
        assert_eq!(l.config.agent.state_dir, PathBuf::from("/var/lib/other"));
        let crate::config::SinkTransport::Http {
            url,
            token,
            token_file,
            ..
        } = &l.config.sink.transport
        else {
            panic!("{:?}", l.config.sink)
        };
        assert_eq!(url.as_str(), "https://sink.example.com/");
        assert_eq!(token.as_ref().map(|t| t.expose()), Some("s3cret"));
        assert_eq!(token_file, &None);
        assert_eq!(
            l.from_env,
            [
                ("agent.hostname".to_owned(), "OUTPOST_HOSTNAME"),
                ("agent.state_dir".to_owned(), "OUTPOST_STATE_DIR"),
                ("sink.url".to_owned(), "OUTPOST_SINK_URL"),
            ]
        );
        assert!(l.token_from_env);
        assert_eq!(
            l.summary().last().unwrap(),
            "environment: OUTPOST_HOSTNAME, OUTPOST_STATE_DIR, OUTPOST_SINK_URL, OUTPOST_SINK_TOKEN"
        );

        // A bad value from the environment names the variable, not a file.
        let bad = |k: &str| (k == "OUTPOST_SINK_URL").then(|| OsString::from("ftp://x"));
        let err = load_layered(&d.main(), &bad).unwrap_err();
        assert_eq!(err.issues.len(), 1, "{err}");
        assert!(
            err.to_string().starts_with(
                "environment OUTPOST_SINK_URL: sink.url: \"ftp://x/\": scheme must be http"
            ),
            "{err}"
        );
        // A token with a kind that does not use one.
        let kinesis = |k: &str| match k {
            "OUTPOST_SINK_KIND" => Some(OsString::from("kinesis")),
            "OUTPOST_SINK_TOKEN" => Some(OsString::from("t")),
            _ => None,
        };
        let d = Dir::new("[sink]\nstream = \"s\"\n");
        let err = load_layered(&d.main(), &kinesis).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment OUTPOST_SINK_TOKEN: not used by sink.kind = \"kinesis\" (only by \"http\"; \"lambda_url\" and \"kinesis\" use AWS credentials)"
        );
    }

    #[test]
    fn the_token_file_is_not_read_when_the_environment_gives_the_token() {
        let d = Dir::new(&format!(
            "{MAIN}token_file = \"/nonexistent/outpost-token\"\n"
        ));
        let err = load_layered(&d.main(), &no_env).unwrap_err();
        assert_eq!(
            err.issues[0].location,
            Location::Key("sink.token_file".into())
        );
        let env = |k: &str| (k == TOKEN_VAR).then(|| OsString::from("t"));
        assert!(load_layered(&d.main(), &env).is_ok());
    }

    #[test]
    fn a_missing_main_file_is_an_error_naming_it() {
        let d = Dir::new(MAIN);
        let missing = d.dir.path().join("nope.toml");
        let err = load_layered(&missing, &no_env).unwrap_err();
        assert_eq!(err.issues[0].origin, Origin::File(missing));
        assert!(
            err.issues[0].message.starts_with("cannot read config file"),
            "{err}"
        );
    }
}
