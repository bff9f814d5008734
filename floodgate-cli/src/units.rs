//! Durations and sizes as the command line takes them.
//!
//! Every duration option accepts plain seconds (`0.2`, `5`) or a number
//! with a unit (`200ms`, `1.5s`, `2m`, `50us`); every size option accepts
//! bytes (`1048576`) or a number with a unit (`64KiB`, `1MiB`, `1.5MB`).
//! Written by hand: the grammar is a dozen lines, and the crates that parse
//! "human" durations disagree with each other on plain numbers.

use std::time::Duration;

/// `"1.5 ms"` as `(1.5, "ms")`; `None` when it does not start with a
/// number.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// Parses `0.2`, `200ms`, `1.5s`, `2m`, `50us`, `1h` (a clap value parser).
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text).ok_or_else(|| {
        format!("{text:?} is not a duration: use seconds (0.2) or a unit (200ms, 1.5s)")
    })?;
    let seconds = match unit {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?}: use ns, us, ms, s, m or h"
            ))
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is not a valid duration"))
}

/// Parses `1048576`, `64KiB`, `1MiB`, `1.5MB`, `2k` (a clap value parser).
/// Binary units (KiB, MiB, GiB) are powers of 1024, decimal ones (kB, MB,
/// GB, and k, M, G) powers of 1000.
pub fn size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text).ok_or_else(|| {
        format!("{text:?} is not a size: use bytes (1048576) or a unit (64KiB, 1MiB)")
    })?;
    let factor: f64 = match unit {
        "" | "B" | "b" => 1.0,
        "KiB" | "Ki" => 1024.0,
        "MiB" | "Mi" => 1024.0 * 1024.0,
        "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        "kB" | "KB" | "k" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}: use B, KiB, MiB, GiB, kB, MB or GB"
            ))
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > usize::MAX as f64 {
        return Err(format!("{text:?} is not a valid size"));
    }
    Ok(bytes.round() as usize)
}

/// A duration as people read it: `850µs`, `12.3ms`, `1.50s`, `2m05s`.
pub fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.1}ms", s * 1e3)
    } else if s < 60.0 {
        format!("{s:.2}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// A byte count as people read it: `512 B`, `1.5 KiB`, `64.0 MiB`.
pub fn show_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A count with thousands separators: `1,234,567`.
pub fn show_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_plain_seconds_or_a_unit() {
        assert_eq!(duration("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("50us"), Ok(Duration::from_micros(50)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert!(duration("fast").unwrap_err().contains("not a duration"));
        assert!(duration("3 fortnights")
            .unwrap_err()
            .contains("unknown duration unit"));
        assert!(duration("").is_err());
    }

    #[test]
    fn figures_are_shown_the_way_people_read_them() {
        assert_eq!(show(Duration::from_micros(850)), "850µs");
        assert_eq!(show(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(show(Duration::from_millis(1500)), "1.50s");
        assert_eq!(show(Duration::from_secs(125)), "2m05s");
        assert_eq!(show_bytes(512), "512 B");
        assert_eq!(show_bytes(1536), "1.5 KiB");
        assert_eq!(show_bytes(64 << 20), "64.0 MiB");
        assert_eq!(show_count(0), "0");
        assert_eq!(show_count(1234), "1,234");
        assert_eq!(show_count(1_234_567), "1,234,567");
    }

    #[test]
    fn sizes_take_bytes_or_a_unit() {
        assert_eq!(size("1048576"), Ok(1 << 20));
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("64KiB"), Ok(64 << 10));
        assert_eq!(size("1.5MB"), Ok(1_500_000));
        assert_eq!(size("2k"), Ok(2000));
        assert!(size("lots").unwrap_err().contains("not a size"));
        assert!(size("1 parsec").unwrap_err().contains("unknown size unit"));
    }
}
