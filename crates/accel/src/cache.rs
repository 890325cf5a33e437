//! Cache sizes of the running CPU, read once from sysfs, with sane defaults where it cannot be read.

use std::sync::OnceLock;

/// Data-cache sizes in bytes, per level, as seen by CPU 0.
///
/// Plain data: every field is public so tests and benchmarks can try other sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheInfo {
    /// Level-1 data cache, bytes.
    pub l1d_bytes: usize,
    /// Level-2 cache, bytes.
    pub l2_bytes: usize,
    /// Level-3 cache, bytes (shared by all cores on the reference machine).
    pub l3_bytes: usize,
    /// True when the numbers came from sysfs, false when they are the defaults.
    pub from_sysfs: bool,
}

impl CacheInfo {
    /// Defaults used when sysfs cannot be read: a typical modern x86 core (48 KiB L1d, 1 MiB L2, 32 MiB L3).
    pub const DEFAULT: CacheInfo = CacheInfo {
        l1d_bytes: 48 * 1024,
        l2_bytes: 1024 * 1024,
        l3_bytes: 32 * 1024 * 1024,
        from_sysfs: false,
    };

    /// The cache sizes of this machine, read from `/sys/devices/system/cpu/cpu0/cache` on first use and cached.
    ///
    /// This is the only I/O accel does. Any level that cannot be read keeps its default, and values outside a
    /// plausible range (a VM can report odd sizes) are clamped into it.
    pub fn detect() -> CacheInfo {
        static DETECTED: OnceLock<CacheInfo> = OnceLock::new();
        *DETECTED.get_or_init(read_sysfs)
    }
}

impl Default for CacheInfo {
    fn default() -> Self {
        CacheInfo::DEFAULT
    }
}

fn read_sysfs() -> CacheInfo {
    let mut info = CacheInfo::DEFAULT;
    let mut any_read = false;
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        let Some(bytes) = parse_size(size.trim()) else {
            continue;
        };
        let kind = kind.trim();
        if kind != "Data" && kind != "Unified" {
            continue;
        }
        match level.trim() {
            "1" => info.l1d_bytes = bytes,
            "2" => info.l2_bytes = bytes,
            "3" => info.l3_bytes = bytes,
            _ => continue,
        }
        any_read = true;
    }
    info.from_sysfs = any_read;
    // A guest can report implausible sizes; keep them in a range where the tile formulas stay sane.
    info.l1d_bytes = info.l1d_bytes.clamp(16 * 1024, 256 * 1024);
    info.l2_bytes = info.l2_bytes.clamp(128 * 1024, 8 * 1024 * 1024);
    info.l3_bytes = info.l3_bytes.clamp(1024 * 1024, 512 * 1024 * 1024);
    info
}

/// Parses sysfs sizes such as `48K`, `2048K`, `32M` or a plain byte count.
fn parse_size(text: &str) -> Option<usize> {
    let (digits, multiplier) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1024),
        b'M' | b'm' => (&text[..text.len() - 1], 1024 * 1024),
        b'G' | b'g' => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    digits.trim().parse::<usize>().ok()?.checked_mul(multiplier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sysfs_sizes() {
        assert_eq!(parse_size("48K"), Some(48 * 1024));
        assert_eq!(parse_size("32M"), Some(32 * 1024 * 1024));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("K"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn detected_sizes_are_plausible() {
        let info = CacheInfo::detect();
        assert!(info.l1d_bytes >= 16 * 1024 && info.l1d_bytes <= info.l2_bytes.max(info.l1d_bytes));
        assert!(info.l2_bytes >= 128 * 1024);
    }
}
