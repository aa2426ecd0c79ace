//! Host metrics through `sysinfo` (the only file that imports it), from one long-lived sampler.
//!
//! Rates (disk and network bytes per second) are computed from the counters' deltas over the
//! time between two samples; the first sample has no rates.

use outpost_proto::{Dimension, MetricPoint, Unit};
use std::collections::HashSet;
use std::time::Instant;
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System,
};

/// The system's host name, or `"localhost"` where it cannot be read.
pub fn system_hostname() -> String {
    System::host_name()
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Samples host metrics. Keep one for the agent's life: CPU usage and rates need the previous
/// reading.
pub struct HostSampler {
    system: System,
    disks: Disks,
    networks: Networks,
    last: Option<Instant>,
}

/// Why the sampler could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot read host metrics: {0}")]
pub struct SamplerError(String);

fn point(name: &str, ts_ms: i64, value: f64, unit: Unit, dims: &[(&str, &str)]) -> MetricPoint {
    let mut dimensions: Vec<Dimension> = dims
        .iter()
        .map(|(k, v)| Dimension {
            key: (*k).to_owned(),
            value: (*v).to_owned(),
        })
        .collect();
    dimensions.sort();
    MetricPoint {
        name: name.to_owned(),
        ts_ms,
        value,
        unit,
        dimensions,
    }
}

/// `used / total` in percent; 0 when `total` is 0 (no swap, say).
pub fn percent(used: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        used as f64 * 100.0 / total as f64
    }
}

/// Bytes per second from a delta over `secs`; `None` for a non-positive interval.
pub fn rate(delta: u64, secs: f64) -> Option<f64> {
    (secs > 0.0).then(|| delta as f64 / secs)
}

/// Processes (not threads) running: the numeric entries of `proc`. One directory read, where
/// refreshing a process table would open several files per process and per thread.
pub fn count_processes(proc: &std::path::Path) -> Option<usize> {
    let entries = std::fs::read_dir(proc).ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.as_encoded_bytes();
                !name.is_empty() && name.iter().all(u8::is_ascii_digit)
            })
            .count(),
    )
}

impl HostSampler {
    /// Create the sampler and take the baseline reading.
    pub fn new() -> Result<Self, SamplerError> {
        let e = |e: sysinfo::Error| SamplerError(e.to_string());
        let mut system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::everything()),
        )
        .map_err(e)?;
        system.refresh_cpu_usage();
        let disks = Disks::new_with_refreshed_list_specifics(
            DiskRefreshKind::nothing().with_storage().with_io_usage(),
        )
        .map_err(e)?;
        let networks = Networks::new_with_refreshed_list().map_err(e)?;
        Ok(Self {
            system,
            disks,
            networks,
            last: Some(Instant::now()),
        })
    }

    /// Take one sample, stamped `ts_ms`.
    pub fn sample(&mut self, ts_ms: i64) -> Vec<MetricPoint> {
        let now = Instant::now();
        let secs = self
            .last
            .map_or(0.0, |l| now.duration_since(l).as_secs_f64());
        self.last = Some(now);
        let mut out = Vec::with_capacity(64);
        self.sample_cpu(ts_ms, &mut out);
        self.sample_memory(ts_ms, &mut out);
        self.sample_disks(ts_ms, secs, &mut out);
        self.sample_networks(ts_ms, secs, &mut out);
        sample_system(ts_ms, &mut out);
        out
    }

    /// CPU: total and per core.
    fn sample_cpu(&mut self, ts_ms: i64, out: &mut Vec<MetricPoint>) {
        self.system.refresh_cpu_usage();
        out.push(point(
            "cpu.utilization",
            ts_ms,
            f64::from(self.system.global_cpu_usage()),
            Unit::Percent,
            &[("cpu", "total")],
        ));
        for (i, cpu) in self.system.cpus().iter().enumerate() {
            out.push(point(
                "cpu.utilization",
                ts_ms,
                f64::from(cpu.usage()),
                Unit::Percent,
                &[("cpu", &i.to_string())],
            ));
        }
    }

    /// Memory and swap.
    fn sample_memory(&mut self, ts_ms: i64, out: &mut Vec<MetricPoint>) {
        self.system.refresh_memory();
        let total = self.system.total_memory();
        let used = self.system.used_memory();
        out.push(point(
            "memory.utilization",
            ts_ms,
            percent(used, total),
            Unit::Percent,
            &[],
        ));
        out.push(point(
            "memory.used_bytes",
            ts_ms,
            used as f64,
            Unit::Bytes,
            &[],
        ));
        out.push(point(
            "swap.utilization",
            ts_ms,
            percent(self.system.used_swap(), self.system.total_swap()),
            Unit::Percent,
            &[],
        ));
    }

    /// Disks: space per mount, I/O rates per device over the last `secs` seconds.
    fn sample_disks(&mut self, ts_ms: i64, secs: f64, out: &mut Vec<MetricPoint>) {
        self.disks.refresh_specifics(
            true,
            DiskRefreshKind::nothing().with_storage().with_io_usage(),
        );
        let mut devices_seen = HashSet::new();
        for disk in self.disks.iter() {
            let mount = disk.mount_point().to_string_lossy().into_owned();
            let total = disk.total_space();
            let used = total.saturating_sub(disk.available_space());
            out.push(point(
                "disk.utilization",
                ts_ms,
                percent(used, total),
                Unit::Percent,
                &[("mount", &mount)],
            ));
            let usage = disk.usage();
            let device = disk.name().to_string_lossy().into_owned();
            // Several mounts can share a device; count each device's I/O once.
            if !devices_seen.insert(device.clone()) {
                continue;
            }
            if let (Some(r), Some(w)) = (
                rate(usage.read_bytes, secs),
                rate(usage.written_bytes, secs),
            ) {
                out.push(point(
                    "disk.read_bytes_per_second",
                    ts_ms,
                    r,
                    Unit::BytesPerSecond,
                    &[("device", &device)],
                ));
                out.push(point(
                    "disk.write_bytes_per_second",
                    ts_ms,
                    w,
                    Unit::BytesPerSecond,
                    &[("device", &device)],
                ));
            }
        }
    }

    /// Network rates per interface over the last `secs` seconds, loopback excluded.
    fn sample_networks(&mut self, ts_ms: i64, secs: f64, out: &mut Vec<MetricPoint>) {
        self.networks.refresh(true);
        let mut names: Vec<_> = self.networks.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        for (name, data) in names {
            let name = name.to_string_lossy();
            if name == "lo" {
                continue;
            }
            if let (Some(rx), Some(tx)) =
                (rate(data.received(), secs), rate(data.transmitted(), secs))
            {
                out.push(point(
                    "network.rx_bytes_per_second",
                    ts_ms,
                    rx,
                    Unit::BytesPerSecond,
                    &[("interface", &name)],
                ));
                out.push(point(
                    "network.tx_bytes_per_second",
                    ts_ms,
                    tx,
                    Unit::BytesPerSecond,
                    &[("interface", &name)],
                ));
            }
        }
    }
}

/// Load, uptime, processes.
fn sample_system(ts_ms: i64, out: &mut Vec<MetricPoint>) {
    if let Ok(load) = System::load_average() {
        out.push(point("load.1m", ts_ms, load.one, Unit::None, &[]));
        out.push(point("load.5m", ts_ms, load.five, Unit::None, &[]));
        out.push(point("load.15m", ts_ms, load.fifteen, Unit::None, &[]));
    }
    if let Ok(up) = System::uptime() {
        out.push(point("uptime", ts_ms, up as f64, Unit::Seconds, &[]));
    }
    if let Some(n) = count_processes(std::path::Path::new("/proc")) {
        out.push(point("process.count", ts_ms, n as f64, Unit::Count, &[]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_the_numeric_entries_of_proc() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["1", "42", "self", "cpuinfo", "4a"] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        assert_eq!(super::count_processes(dir.path()), Some(2));
        assert_eq!(super::count_processes(&dir.path().join("missing")), None);
        // This very process is one of them.
        assert!(super::count_processes(std::path::Path::new("/proc")).unwrap() >= 1);
    }

    #[test]
    fn percent_and_rate_edge_cases() {
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(rate(100, 2.0), Some(50.0));
        assert_eq!(rate(100, 0.0), None);
    }

    #[test]
    fn a_sample_has_the_documented_metrics() {
        let mut s = HostSampler::new().unwrap();
        let points = s.sample(1);
        let names: std::collections::BTreeSet<&str> =
            points.iter().map(|p| p.name.as_str()).collect();
        for n in [
            "cpu.utilization",
            "memory.utilization",
            "memory.used_bytes",
            "swap.utilization",
            "load.1m",
            "load.5m",
            "load.15m",
            "uptime",
            "process.count",
        ] {
            assert!(names.contains(n), "missing {n}: {names:?}");
        }
        let mem = points
            .iter()
            .find(|p| p.name == "memory.utilization")
            .unwrap();
        assert!((0.0..=100.0).contains(&mem.value));
        let cpus = points
            .iter()
            .filter(|p| p.name == "cpu.utilization")
            .count();
        assert!(cpus >= 2, "total plus at least one core");
        assert!(points.iter().all(|p| p.ts_ms == 1));
        assert!(
            !points.iter().any(|p| p
                .dimensions
                .iter()
                .any(|d| d.key == "interface" && d.value == "lo")),
            "loopback is excluded"
        );
    }
}
