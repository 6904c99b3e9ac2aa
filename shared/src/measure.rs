//! What the benchmarks measure with, written once: nearest-rank percentiles of sorted samples,
//! and a process's resident memory from `/proc/<pid>/status` (Linux).

/// Nearest-rank percentile (`p` in 0..=1) of `sorted` samples; the default value when empty.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A process's resident set now (`VmRSS`) and its peak so far (`VmHWM`), in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub peak_kib: u64,
}

impl Memory {
    /// The memory of process `pid`; `None` when it is gone or `/proc` is not Linux's.
    pub fn of_pid(pid: u32) -> Option<Memory> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }

    /// The memory of this process (zeros where `/proc` is missing).
    pub fn of_self() -> Memory {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| Self::parse(&status))
            .unwrap_or_default()
    }

    /// Reads `VmRSS:` and `VmHWM:` (both in kB) out of a `/proc/<pid>/status` text.
    pub fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    pub fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }

    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: u64| Duration::from_millis(v);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.5), ms(50));
        assert_eq!(percentile(&sorted, 0.99), ms(99));
        assert_eq!(percentile::<Duration>(&[], 0.5), Duration::ZERO);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[test]
    fn memory_from_proc_status() {
        let status = "Name:\tfacegate\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        let memory = Memory::parse(status).unwrap();
        assert_eq!(memory.rss_kib, 102_400);
        assert_eq!(memory.peak_mib(), 200.0);
        assert_eq!(Memory::parse("Name:\tzombie\n"), None);
        assert!(Memory::of_pid(std::process::id()).is_some_and(|m| m.peak_kib >= m.rss_kib));
    }
}
