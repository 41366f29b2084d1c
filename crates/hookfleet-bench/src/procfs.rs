//! CPU time and peak memory of processes, read from Linux `/proc`: the workers' cost per
//! delivery, and how the machine's CPU split between the worker, RabbitMQ, Redis and the bench
//! itself (publisher and receiver) while a scenario ran.

use std::sync::OnceLock;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User plus system CPU seconds used so far by `pid` (its threads included).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields are counted after the
    // last ')'. utime and stime are fields 14 and 15, so the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

/// Peak resident memory (`VmHWM`) of `pid`, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The ids of running processes whose command name is `comm` (e.g. `beam.smp`).
pub fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

/// CPU seconds of the processes of interest, taken at one moment.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    pub workers: f64,
    pub rabbitmq: f64,
    pub redis: f64,
    /// PostgreSQL's server processes (the message history, when a scenario records one).
    pub postgres: f64,
    pub bench: f64,
    /// The whole machine's busy CPU seconds (all processes, kernel included).
    pub machine: f64,
}

/// Busy CPU seconds of the whole machine since boot, from the `cpu` line of `/proc/stat`
/// (everything but idle and iowait).
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy as f64 / clock_ticks())
}

impl CpuSample {
    pub fn take(worker_pids: &[u32]) -> Self {
        let sum = |pids: &[u32]| pids.iter().filter_map(|p| cpu_seconds(*p)).sum::<f64>();
        Self {
            workers: sum(worker_pids),
            rabbitmq: sum(&pids_named("beam.smp")),
            redis: sum(&pids_named("redis-server")),
            postgres: sum(&pids_named("postgres")),
            bench: cpu_seconds(std::process::id()).unwrap_or(0.0),
            machine: machine_busy_seconds().unwrap_or(0.0),
        }
    }

    /// The CPU used between `earlier` and this sample.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            workers: self.workers - earlier.workers,
            rabbitmq: self.rabbitmq - earlier.rabbitmq,
            redis: self.redis - earlier.redis,
            postgres: self.postgres - earlier.postgres,
            bench: self.bench - earlier.bench,
            machine: self.machine - earlier.machine,
        }
    }
}
