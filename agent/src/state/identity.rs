//! Who this agent is: its id (config, `/etc/machine-id`, or one generated and kept in the
//! state directory) and host name.

use outpost_proto::AgentIdentity;
use std::io;
use std::path::Path;

/// The file systemd and dbus keep the machine id in.
pub const MACHINE_ID: &str = "/etc/machine-id";

/// Where an agent id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    /// `agent.id` in the config.
    Config,
    /// `/etc/machine-id`.
    MachineId,
    /// `STATE_DIR/agent-id`, generated on first start where there is no machine id.
    Generated,
}

/// Resolve the agent id: configured, else the machine id, else one kept in the state directory.
pub fn resolve_id(
    configured: Option<&str>,
    machine_id_path: &Path,
    state_dir: &Path,
) -> io::Result<(String, IdSource)> {
    if let Some(id) = configured {
        return Ok((id.to_owned(), IdSource::Config));
    }
    if let Ok(text) = std::fs::read_to_string(machine_id_path) {
        let id = text.trim();
        if !id.is_empty() {
            return Ok((id.to_owned(), IdSource::MachineId));
        }
    }
    let kept = state_dir.join("agent-id");
    match std::fs::read_to_string(&kept) {
        Ok(text) if !text.trim().is_empty() => Ok((text.trim().to_owned(), IdSource::Generated)),
        Ok(_) => generate(&kept),
        Err(e) if e.kind() == io::ErrorKind::NotFound => generate(&kept),
        Err(e) => Err(e),
    }
}

fn generate(path: &Path) -> io::Result<(String, IdSource)> {
    let id = format!("{:032x}", rand::random::<u128>());
    outpost_durable::replace(path, format!("{id}\n").as_bytes())?;
    Ok((id, IdSource::Generated))
}

/// Build the identity sent with every batch.
pub fn identity(agent_id: String, hostname: String) -> AgentIdentity {
    AgentIdentity {
        agent_id,
        hostname,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_config_then_machine_id_then_generated() {
        let dir = tempfile::tempdir().unwrap();
        let mid = dir.path().join("machine-id");
        std::fs::write(&mid, "abc\n").unwrap();
        assert_eq!(
            resolve_id(Some("cfg"), &mid, dir.path()).unwrap(),
            ("cfg".to_owned(), IdSource::Config)
        );
        assert_eq!(
            resolve_id(None, &mid, dir.path()).unwrap(),
            ("abc".to_owned(), IdSource::MachineId)
        );
        let missing = dir.path().join("nope");
        let (g1, s1) = resolve_id(None, &missing, dir.path()).unwrap();
        let (g2, _) = resolve_id(None, &missing, dir.path()).unwrap();
        assert_eq!(s1, IdSource::Generated);
        assert_eq!(g1.len(), 32);
        assert_eq!(g1, g2, "a generated id is kept");
    }
}
