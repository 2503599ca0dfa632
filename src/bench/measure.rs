//! What the benchmark reads about a child process and the machine, from `/proc`: resident memory
//! (total, peak, anonymous versus file-backed), CPU time, and the load average (the machine is
//! shared, so time figures come with it).

use std::time::Duration;

/// Linux reports `utime`/`stime` in USER_HZ ticks, 100 per second on every architecture the
/// kernel's ABI allows for /proc (`sysconf(_SC_CLK_TCK)`).
const USER_HZ: f64 = 100.0;

/// One reading of `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// VmHWM: the peak resident set since start.
    pub peak: u64,
    /// VmRSS.
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
}

/// Reads `VmHWM`-style lines (kB) from a /proc/<pid>/status text.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

impl Memory {
    pub fn parse(status: &str) -> Option<Memory> {
        Some(Memory {
            peak: status_kib(status, "VmHWM")?,
            rss: status_kib(status, "VmRSS")?,
            anon: status_kib(status, "RssAnon").unwrap_or(0),
            file: status_kib(status, "RssFile").unwrap_or(0),
        })
    }

    pub fn of(pid: u32) -> Option<Memory> {
        Memory::parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }
}

/// The largest anonymous and file-backed resident sizes seen over a phase (sampled: VmHWM is the
/// exact peak of their sum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peaks {
    pub anon: u64,
    pub file: u64,
}

impl Peaks {
    pub fn observe(&mut self, m: &Memory) {
        self.anon = self.anon.max(m.anon);
        self.file = self.file.max(m.file);
    }
}

/// User plus system CPU time of the whole process (every thread), from a /proc/<pid>/stat text.
pub fn cpu_time(stat: &str) -> Option<Duration> {
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, i.e. 12 and 13 after the state (field 3).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

pub fn cpu_of(pid: u32) -> Option<Duration> {
    cpu_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields() {
        let s = "Name:\tkubemirror\nVmPeak:\t  100 kB\nVmHWM:\t    8124 kB\nVmRSS:\t    7000 kB\nRssAnon:\t 1500 kB\nRssFile:\t 5500 kB\n";
        assert_eq!(status_kib(s, "VmHWM"), Some(8124));
        assert_eq!(status_kib(s, "VmSwap"), None);
        assert_eq!(Memory::parse(s), Some(Memory { peak: 8124, rss: 7000, anon: 1500, file: 5500 }));
        assert_eq!(Memory::parse("VmRSS: 1 kB\n"), None);
        let mut p = Peaks::default();
        p.observe(&Memory { anon: 3, file: 9, ..Memory::default() });
        p.observe(&Memory { anon: 5, file: 1, ..Memory::default() });
        assert_eq!(p, Peaks { anon: 5, file: 9 });
    }

    #[test]
    fn cpu_from_stat() {
        let stat = "4242 (kube mirror) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 37 0 0 20 0 3 0 12345 1 2";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(2870)));
        assert_eq!(cpu_time("garbage"), None);
        assert!(cpu_of(std::process::id()).is_some());
        assert!(Memory::of(std::process::id()).is_some_and(|m| m.rss > 0 && m.peak >= m.rss));
    }
}
