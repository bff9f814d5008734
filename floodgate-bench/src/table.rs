//! Turning runs into Markdown tables.
//!
//! Throughput is taken from the best (shortest) run of each client, as the
//! least disturbed by a noisy machine; the median run is printed beside it.
//! Ratios compare best runs: to the fastest *anchor* row (every other
//! library, tuned rows included; never floodgate, never raw-tcp), to the
//! raw TCP ceiling, to the direct `floodgate` client (the yardstick of its
//! variants, such as the buffered path), and, for the clients that run on
//! tokio, to the fastest *async* anchor row (every anchor but the blocking
//! tungstenite): the comparison a user choosing an async client makes.

use std::fmt::Write as _;
use std::time::Duration;

use crate::clients::{Outcome, Role};

/// All runs of one client at one size.
pub struct Series {
    /// Client name.
    pub name: &'static str,
    /// Its role.
    pub role: Role,
    /// Runs on tokio: gets the "vs fastest async anchor" column.
    pub asynchronous: bool,
    /// Successful runs.
    pub runs: Vec<Outcome>,
    /// Set if any run failed or miscounted; the row then says so.
    pub failure: Option<String>,
}

impl Series {
    /// The shortest run.
    pub fn best(&self) -> Option<Duration> {
        self.runs.iter().map(|o| o.elapsed).min()
    }

    /// The median run (the upper one for an even count).
    pub fn median(&self) -> Option<Duration> {
        let mut v: Vec<Duration> = self.runs.iter().map(|o| o.elapsed).collect();
        v.sort();
        v.get(v.len() / 2).copied()
    }
}

fn per_sec(count: f64, d: Duration) -> f64 {
    count / d.as_secs_f64()
}

/// Formats a rate with thousands separators, no decimals.
pub fn group(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Formats a number of bytes in binary units, three significant figures
/// or so: `512 B`, `1.5 KiB`, `98 KiB`, `3.5 MiB`, `64 MiB`.
pub fn bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{:.0} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 10 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Formats a duration in the unit that suits it: `0`, `850 ns`, `36.9 µs`,
/// `46.5 ms`, `5.51 s`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns == 0.0 {
        "0".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// The result of one size: the table and the summary lines.
pub struct Rendered {
    /// Markdown, heading included.
    pub markdown: String,
    /// `floodgate / fastest anchor = X.XXx`, if both ran; then
    /// `VARIANT / floodgate = X.XXx` for each variant that ran; then
    /// `CLIENT / fastest async anchor = X.XXx` for each floodgate client on
    /// tokio.
    pub summary: Vec<String>,
}

/// Issue 17's throughput target for the buffered path, as a share of the
/// direct path: 0.7x at 16 B, 0.95x at 1 KiB and 64 KiB (issue 3's were
/// 0.5x and 0.9x).
pub fn buffered_target(size: usize) -> Option<f64> {
    match size {
        16 => Some(0.7),
        1024 | 65536 => Some(0.95),
        _ => None,
    }
}

/// Renders the table for one payload size.
pub fn render(size: usize, count: u64, runs: usize, series: &[Series]) -> Rendered {
    let best_where = |keep: &dyn Fn(&Series) -> bool| {
        series
            .iter()
            .filter(|s| keep(s) && s.failure.is_none())
            .filter_map(|s| s.best().map(|d| (s.name, d)))
            .min_by_key(|&(_, d)| d)
    };
    let best_of = |role: Role| best_where(&|s: &Series| s.role == role);
    let anchor = best_of(Role::Anchor);
    let ceiling = best_of(Role::Ceiling);
    let subject = best_of(Role::Subject);
    let is_async_anchor = |s: &Series| s.role == Role::Anchor && s.asynchronous;
    let async_anchor = best_where(&is_async_anchor);
    let any_async = series.iter().any(|s| s.asynchronous);

    let mut md = String::new();
    let _ = writeln!(
        md,
        "### {} B payloads x {} messages (best of {runs})\n",
        size,
        group(count as f64)
    );
    md.push_str(
        "| client | msgs/s (best) | MiB/s (best) | msgs/s (median) | vs fastest anchor | vs raw-tcp \
         | vs floodgate |",
    );
    md.push_str(if any_async {
        " vs fastest async anchor |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n|---|---:|---:|---:|---:|---:|---:|\n"
    });
    for s in series {
        if let Some(f) = &s.failure {
            let _ = writeln!(
                md,
                "| {} | FAILED: {} | | | | | |{}",
                s.name,
                f.replace('|', "/"),
                if any_async { " |" } else { "" }
            );
            continue;
        }
        let (Some(best), Some(median)) = (s.best(), s.median()) else {
            continue;
        };
        let ratio = |other: Option<(&str, Duration)>| match other {
            Some((_, d)) => format!("{:.2}x", d.as_secs_f64() / best.as_secs_f64()),
            None => "-".into(),
        };
        let name = match s.role {
            Role::Subject | Role::Variant => format!("**{}**", s.name),
            _ => s.name.to_string(),
        };
        let async_column = match (any_async, s.asynchronous) {
            (false, _) => String::new(),
            (true, true) => format!(" {} |", ratio(async_anchor)),
            (true, false) => " - |".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {} | {} | {} | {} |{}",
            name,
            group(per_sec(count as f64, best)),
            per_sec((count * size as u64) as f64, best) / (1024.0 * 1024.0),
            group(per_sec(count as f64, median)),
            ratio(anchor),
            ratio(ceiling),
            ratio(subject),
            async_column,
        );
    }

    // On medians, the anchor with the best median (not necessarily the one
    // with the best single run).
    let median_of = |role: Role| {
        series
            .iter()
            .filter(|s| s.role == role && s.failure.is_none())
            .filter_map(|s| s.median())
            .min()
    };
    // The async lines come last, after floodgate's own.
    let mut async_summary = Vec::new();
    let async_anchor_median = series
        .iter()
        .filter(|s| is_async_anchor(s) && s.failure.is_none())
        .filter_map(|s| s.median())
        .min();
    if let (Some((an, ab)), Some(am)) = (async_anchor, async_anchor_median) {
        for v in series
            .iter()
            .filter(|s| s.asynchronous && s.role != Role::Anchor && s.failure.is_none())
        {
            let (Some(vb), Some(vm)) = (v.best(), v.median()) else {
                continue;
            };
            async_summary.push(format!(
                "{size} B: {} / fastest async anchor = {:.2}x (anchor: {an}; on medians: {:.2}x)",
                v.name,
                ab.as_secs_f64() / vb.as_secs_f64(),
                am.as_secs_f64() / vm.as_secs_f64(),
            ));
        }
    }
    let mut summary = Vec::new();
    if let (Some((_, fb)), Some((an, ab)), Some(fm), Some(am)) = (
        subject,
        anchor,
        median_of(Role::Subject),
        median_of(Role::Anchor),
    ) {
        summary.push(format!(
            "{size} B: floodgate / fastest anchor = {:.2}x (anchor: {an}; on medians: {:.2}x)",
            ab.as_secs_f64() / fb.as_secs_f64(),
            am.as_secs_f64() / fm.as_secs_f64(),
        ));
    }
    let (Some((_, fb)), Some(fm)) = (subject, median_of(Role::Subject)) else {
        summary.extend(async_summary);
        return Rendered {
            markdown: md,
            summary,
        };
    };
    for v in series
        .iter()
        .filter(|s| s.role == Role::Variant && s.failure.is_none())
    {
        let (Some(vb), Some(vm)) = (v.best(), v.median()) else {
            continue;
        };
        let on_best = fb.as_secs_f64() / vb.as_secs_f64();
        let on_median = fm.as_secs_f64() / vm.as_secs_f64();
        let target = match buffered_target(size) {
            Some(t) if v.name == "floodgate-buffered" => format!(
                "; target >= {t:.2}x: {}",
                match (on_best >= t, on_median >= t) {
                    (true, true) => "met",
                    (true, false) => "met on best runs only",
                    (false, true) => "met on medians only",
                    (false, false) => "MISSED",
                }
            ),
            _ => String::new(),
        };
        summary.push(format!(
            "{size} B: {} / floodgate = {on_best:.2}x (on medians: {on_median:.2}x{target})",
            v.name
        ));
    }
    summary.extend(async_summary);
    Rendered {
        markdown: md,
        summary,
    }
}

/// Prints the run's summary lines as a `### Summary` list (nothing when
/// there are none).
pub fn print_summary(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    println!("### Summary\n");
    for line in lines {
        println!("- {line}");
    }
    println!();
}

/// A benchmark binary's exit status: success, or the failures listed on
/// stderr and a failure status (a run that miscounted must not look like
/// a result).
pub fn exit_status(failures: &[String]) -> std::process::ExitCode {
    if failures.is_empty() {
        return std::process::ExitCode::SUCCESS;
    }
    eprintln!("\n{} FAILURE(S):", failures.len());
    for f in failures {
        eprintln!("  {f}");
    }
    std::process::ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    #[test]
    fn grouping() {
        assert_eq!(super::group(1234567.4), "1,234,567");
        assert_eq!(super::group(999.0), "999");
        assert_eq!(super::group(1000.0), "1,000");
    }

    #[test]
    fn units() {
        use std::time::Duration;
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(1536), "1.5 KiB");
        assert_eq!(super::bytes(64 << 20), "64 MiB");
        assert_eq!(super::duration(Duration::ZERO), "0");
        assert_eq!(super::duration(Duration::from_micros(36_900)), "36.9 ms");
        assert_eq!(super::duration(Duration::from_millis(5510)), "5.51 s");
    }
}
