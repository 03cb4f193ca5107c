//! /proc readings: a process id in, its resident memory and CPU time out; and how busy the whole machine is.

/// Linux reports CPU times in USER_HZ, 100 on every architecture we run on.
pub const TICKS_PER_S: f64 = 100.0;

/// Resident memory (VmRSS) of `pid` in KiB, and its user + system CPU time
/// in ticks; None once the process is gone.
pub fn rss_and_cpu(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields count from after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((rss_kib, ticks))
}

/// This process's resident memory, in KiB.
pub fn self_rss_kib() -> u64 {
    rss_and_cpu(std::process::id())
        .expect("VmRSS in /proc/self/status")
        .0
}

/// This process's CPU time in ticks.
pub fn self_cpu_ticks() -> u64 {
    rss_and_cpu(std::process::id()).map_or(0, |(_, t)| t)
}

/// The whole machine's busy and total CPU time in ticks, all cores (the
/// `cpu` line of /proc/stat): how much else ran beside a test.
pub fn machine_cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    let total: u64 = fields.iter().take(8).sum();
    Some((total - idle, total))
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_the_machine() {
        let (rss, _) = rss_and_cpu(std::process::id()).unwrap();
        assert!(rss > 0);
        let (busy, total) = machine_cpu_ticks().unwrap();
        assert!(busy <= total);
        assert!(open_fds() > 0);
    }
}
