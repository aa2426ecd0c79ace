//! Merging config layers (the main file, drop-ins in order, the environment) into one TOML
//! table, remembering which layer set each key so an error can name the file or variable.
//!
//! The rules (documented in docs/configuration.md, "Drop-in files"):
//! - tables merge key by key, recursively;
//! - any other value (a string, number, boolean, or an inline array such as `paths`) set by a
//!   later layer replaces the earlier one;
//! - the entries of an appending list ([`APPEND_KEYS`]: `[[logs]]`, `[[exec]]`) are added after
//!   the ones already there, so a drop-in adds inputs and never changes or removes an earlier
//!   one.

use super::error::Origin;
use std::collections::BTreeMap;
use toml::{Table, Value};

/// Top-level keys whose lists are appended to rather than replaced.
pub const APPEND_KEYS: &[&str] = &["logs", "exec"];

/// The merged table, and the origin of every value in it.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// The merged config, as TOML.
    pub table: Table,
    /// Dotted key (`sink.url`, `logs[2]`) -> the layer that set it. Entries of an appending
    /// list are recorded as a whole (`logs[2]`), other values by their full key.
    origins: BTreeMap<String, Origin>,
}

impl Merged {
    /// Lay `layer` over what is merged so far.
    pub fn apply(&mut self, layer: Table, origin: &Origin) {
        for (key, value) in layer {
            match value {
                Value::Array(items) if APPEND_KEYS.contains(&key.as_str()) => {
                    let mut list = match self.table.remove(&key) {
                        Some(Value::Array(list)) => list,
                        _ => {
                            forget(&mut self.origins, &key);
                            Vec::new()
                        }
                    };
                    for item in items {
                        self.origins
                            .insert(format!("{key}[{}]", list.len()), origin.clone());
                        list.push(item);
                    }
                    self.table.insert(key, Value::Array(list));
                }
                value => merge_value(&mut self.table, &mut self.origins, key, value, "", origin),
            }
        }
    }

    /// Where the value at `key` (as `validate` names keys: `agent.id`, `logs[0].paths[1]`)
    /// came from: the layer that set it or the entry holding it; `None` for a default.
    pub fn origin_of(&self, key: &str) -> Option<&Origin> {
        let mut k = key;
        loop {
            if let Some(o) = self.origins.get(k) {
                return Some(o);
            }
            // Drop the last component: `a.b[1]` -> `a.b`, `a.b` -> `a`.
            let cut = k.rfind(['.', '['])?;
            k = &k[..cut];
        }
    }

    /// The keys set by environment variables, with the variable.
    pub fn from_env(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.origins.iter().filter_map(|(k, o)| match o {
            Origin::Env(name) => Some((k.as_str(), *name)),
            Origin::File(_) => None,
        })
    }
}

/// Forget the origins of `key` and everything under it (its value is being replaced).
fn forget(origins: &mut BTreeMap<String, Origin>, key: &str) {
    origins.retain(|k, _| {
        !(k == key
            || k.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(['.', '['])))
    });
}

fn merge_value(
    into: &mut Table,
    origins: &mut BTreeMap<String, Origin>,
    key: String,
    value: Value,
    prefix: &str,
    origin: &Origin,
) {
    let path = if prefix.is_empty() {
        key.clone()
    } else {
        format!("{prefix}.{key}")
    };
    match (into.get_mut(&key), value) {
        (Some(Value::Table(existing)), Value::Table(layer)) => {
            for (k, v) in layer {
                merge_value(existing, origins, k, v, &path, origin);
            }
        }
        (_, Value::Table(layer)) => {
            // A new table (or one replacing a value of another type): record its leaves.
            forget(origins, &path);
            let mut fresh = Table::new();
            for (k, v) in layer {
                merge_value(&mut fresh, origins, k, v, &path, origin);
            }
            into.insert(key, Value::Table(fresh));
        }
        (_, v) => {
            forget(origins, &path);
            origins.insert(path, origin.clone());
            into.insert(key, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn t(text: &str) -> Table {
        text.parse().unwrap()
    }
    fn file(name: &str) -> Origin {
        Origin::File(PathBuf::from(name))
    }

    #[test]
    fn tables_merge_key_by_key_and_later_values_replace() {
        let mut m = Merged::default();
        m.apply(
            t("[agent]\nid = \"a\"\nstate_dir = \"/s\"\n[sink]\nkind = \"http\"\nurl = \"http://one\"\n"),
            &file("main"),
        );
        m.apply(
            t("[sink]\nurl = \"http://two\"\n[batch]\nmax_records = 5\n"),
            &file("10.toml"),
        );
        m.apply(t("[agent]\nid = \"b\"\n"), &Origin::Env("OUTPOST_AGENT_ID"));
        let expected = t(r#"
[agent]
id = "b"
state_dir = "/s"
[sink]
kind = "http"
url = "http://two"
[batch]
max_records = 5
"#);
        assert_eq!(m.table, expected);
        assert_eq!(
            m.origin_of("agent.id"),
            Some(&Origin::Env("OUTPOST_AGENT_ID"))
        );
        assert_eq!(m.origin_of("agent.state_dir"), Some(&file("main")));
        assert_eq!(m.origin_of("sink.kind"), Some(&file("main")));
        assert_eq!(m.origin_of("sink.url"), Some(&file("10.toml")));
        assert_eq!(m.origin_of("batch.max_records"), Some(&file("10.toml")));
        // A default: set by no layer.
        assert_eq!(m.origin_of("batch.max_age"), None);
        assert_eq!(
            m.from_env().collect::<Vec<_>>(),
            [("agent.id", "OUTPOST_AGENT_ID")]
        );
    }

    #[test]
    fn inline_arrays_are_replaced_whole() {
        let mut m = Merged::default();
        m.apply(t("[x]\nlist = [1, 2, 3]\n"), &file("main"));
        m.apply(t("[x]\nlist = [9]\n"), &file("dropin"));
        assert_eq!(m.table, t("[x]\nlist = [9]\n"));
        assert_eq!(m.origin_of("x.list[0]"), Some(&file("dropin")));
    }

    #[test]
    fn logs_entries_are_appended_in_layer_order_and_keep_their_file() {
        let mut m = Merged::default();
        let entry = |s: &str| format!("[[logs]]\npaths = [\"/{s}/*.log\"]\nservice = \"{s}\"\n");
        m.apply(t(&format!("{}{}", entry("a"), entry("b"))), &file("main"));
        m.apply(t(&entry("c")), &file("10-c.toml"));
        m.apply(t("[host]\nenabled = false\n"), &file("20-host.toml"));
        m.apply(t(&entry("d")), &file("30-d.toml"));
        let services: Vec<&str> = m.table["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["service"].as_str().unwrap())
            .collect();
        assert_eq!(services, ["a", "b", "c", "d"]);
        assert_eq!(m.origin_of("logs[1].service"), Some(&file("main")));
        assert_eq!(m.origin_of("logs[2].paths[0]"), Some(&file("10-c.toml")));
        assert_eq!(
            m.origin_of("logs[3].multiline.start_pattern"),
            Some(&file("30-d.toml"))
        );
        // Drop-ins without logs leave the list alone; a drop-in with only logs starts it.
        let mut only_dropin = Merged::default();
        only_dropin.apply(t("[host]\nenabled = true\n"), &file("main"));
        only_dropin.apply(t(&entry("x")), &file("10.toml"));
        assert_eq!(only_dropin.table["logs"].as_array().unwrap().len(), 1);
        assert_eq!(only_dropin.origin_of("logs[0]"), Some(&file("10.toml")));
    }

    #[test]
    fn a_replaced_table_forgets_the_origins_of_its_old_keys() {
        // Not reachable with the agent's schema (types are fixed per key), but the merge must
        // stay consistent: the origins describe the table as it is.
        let mut m = Merged::default();
        m.apply(t("[a]\nb = { c = 1, d = 2 }\n"), &file("one"));
        m.apply(t("[a]\nb = 5\n"), &file("two"));
        assert_eq!(m.table, t("[a]\nb = 5\n"));
        assert_eq!(m.origin_of("a.b.c"), Some(&file("two")));
        m.apply(t("[a.b]\ne = 1\n"), &file("three"));
        assert_eq!(m.table, t("[a.b]\ne = 1\n"));
        assert_eq!(m.origin_of("a.b.c"), None);
        assert_eq!(m.origin_of("a.b.e"), Some(&file("three")));
    }

    #[test]
    fn exec_entries_are_appended_like_logs() {
        let mut m = Merged::default();
        let entry = |s: &str| format!("[[exec]]\nname = \"{s}\"\ncommand = [\"/bin/{s}\"]\n");
        m.apply(t(&entry("a")), &file("main"));
        m.apply(
            t(&format!("[textfile]\ndir = \"/t\"\n{}", entry("b"))),
            &file("10.toml"),
        );
        let names: Vec<&str> = m.table["exec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(m.origin_of("exec[1].command[0]"), Some(&file("10.toml")));
        assert_eq!(m.origin_of("textfile.dir"), Some(&file("10.toml")));
    }
}
