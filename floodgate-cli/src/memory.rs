//! The process's resident memory, read from `/proc/self` (Linux).
//!
//! The demo runs each policy in this one process and wants each run's own
//! peak, so it resets the kernel's high-water mark (`VmHWM`) between runs
//! by writing `5` to `/proc/self/clear_refs` (Linux 4.0 and later). Where
//! that is not possible the peak is the process's since it started, and
//! [`reset_peak`] says so.

/// Resets the peak resident set size; whether it could.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak resident set size in bytes (`VmHWM`).
pub fn peak_rss() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_follows_a_large_allocation_and_can_be_reset() {
        let Some(before) = peak_rss() else {
            return; // not Linux: nothing to read
        };
        let block = vec![1u8; 64 << 20];
        std::hint::black_box(&block);
        let peak = peak_rss().unwrap();
        assert!(peak >= before.max(64 << 20), "{peak} after a 64 MiB block");
        drop(block);
        if reset_peak() {
            let after = peak_rss().unwrap();
            assert!(after < peak, "reset: {after} vs {peak}");
        }
    }
}
