//! What the load generator reads from `/proc`: a process's peak and current RSS and CPU time, the
//! CPU time of every Postgres process, and the machine's busy CPU time, so that a run can say where
//! the cores went (the API, Postgres, the load generator itself, anything else).

use std::collections::HashMap;

/// Clock ticks per second of `/proc/*/stat` and `/proc/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// `(VmHWM, VmRSS)` of a process, in KiB, from `/proc/<pid>/status`.
pub fn read_memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// User + system CPU seconds of a process, from `/proc/<pid>/stat`.
pub fn read_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_seconds_of_stat(&stat).map(|(_, seconds)| seconds)
}

/// The command name and user + system CPU seconds in a `/proc/<pid>/stat` line.
fn cpu_seconds_of_stat(stat: &str) -> Option<(&str, f64)> {
    // NB: the command name (field 2) is in parentheses and may contain spaces; the fields after
    // its closing parenthesis start at field 3, so utime and stime (fields 14 and 15) are at
    // offsets 11 and 12.
    let name_end = stat.rfind(')')?;
    let name = &stat[stat.find('(')? + 1..name_end];
    let mut fields = stat[name_end + 1..].split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SECOND))
}

/// CPU seconds used so far by each live process whose command name is `name`, by PID.
pub fn cpu_seconds_by_name(name: &str) -> HashMap<u32, f64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (command, seconds) = cpu_seconds_of_stat(&stat)?;
            (command == name).then_some((pid, seconds))
        })
        .collect()
}

/// CPU seconds the processes of `after` used since `before` (a process born in between counts
/// from zero; one that ended in between is not seen).
pub fn cpu_seconds_since(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, seconds)| seconds - before.get(pid).copied().unwrap_or(0.0))
        .filter(|used| *used > 0.0)
        .sum()
}

/// Busy (not idle, not waiting for I/O) CPU seconds of the whole machine, summed over its
/// cores, from the first line of `/proc/stat`.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    busy_seconds_of_proc_stat(&stat)
}

fn busy_seconds_of_proc_stat(stat: &str) -> Option<f64> {
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let (idle, iowait) = (*ticks.get(3)?, *ticks.get(4)?);
    let total: u64 = ticks.iter().take(8).sum();
    Some((total - idle - iowait) as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn own_memory_and_cpu_are_readable() {
        let (peak, current) = read_memory_kib(std::process::id()).unwrap();
        assert!(peak >= current && current > 0);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0_u64);
        }
        assert!(read_cpu_seconds(std::process::id()).unwrap() > 0.0);
        assert!(machine_busy_seconds().unwrap() > 0.0);
    }

    #[test]
    fn stat_lines_with_spaces_in_the_name_parse() {
        let stat = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 2 0";
        assert_eq!(cpu_seconds_of_stat(stat), Some(("tokio rt", 3.0)));
    }

    #[test]
    fn processes_by_name_include_ourselves() {
        let own = std::fs::read_to_string("/proc/self/comm").unwrap();
        let found = cpu_seconds_by_name(own.trim_end());
        assert!(found.contains_key(&std::process::id()));
    }

    #[test]
    fn cpu_since_counts_new_processes_from_zero() {
        let before = HashMap::from([(1, 2.0), (2, 5.0)]);
        let after = HashMap::from([(1, 3.5), (3, 0.5)]);
        assert!((cpu_seconds_since(&before, &after) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn proc_stat_busy_time_leaves_idle_and_iowait_out() {
        let stat = "cpu  100 20 30 1000 50 5 5 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(busy_seconds_of_proc_stat(stat), Some(1.6));
    }
}
