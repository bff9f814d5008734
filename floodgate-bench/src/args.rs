//! Command-line parsing shared by the benchmark binaries.
//!
//! What every binary accepts the same way: `--flag value` or
//! `--flag=value`, `_` as a digit separator in numbers (`--count
//! 10_000_000`), comma-separated lists (`--only a,b`, `--sizes 16,1024`),
//! `-h` / `--help` (print the binary's usage and exit 0), and per-size flags
//! whose name ends in a payload size (`--count-16 N`, `--rounds-65536 N`)
//! next to their every-size form (`--count N`).
//!
//! Not clap: a flag per payload size has a name only known at run time,
//! which clap cannot declare, and each binary's usage text is written by
//! hand (it is quoted in BENCHMARKS.md); this is the small part of clap the
//! binaries need.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

/// Walks the arguments one flag at a time.
///
/// ```
/// use floodgate_bench::args::Parser;
///
/// let argv = ["--runs=2", "--only", "a, b"].map(String::from);
/// let mut p = Parser::new(argv, "usage: demo [--runs K] [--only NAME,...]");
/// let (mut runs, mut only) = (3usize, Vec::new());
/// while let Some(flag) = p.next_flag() {
///     match flag.as_str() {
///         "--runs" => runs = p.num().unwrap(),
///         "--only" => only = p.list().unwrap(),
///         _ => panic!("{}", p.unknown()),
///     }
/// }
/// assert_eq!((runs, only), (2, vec!["a".to_string(), "b".to_string()]));
/// ```
pub struct Parser<I> {
    argv: I,
    usage: &'static str,
    /// The current flag, without an inline value.
    flag: String,
    /// The value after `=` in the current flag, not taken yet.
    inline: Option<String>,
}

impl<I: Iterator<Item = String>> Parser<I> {
    /// A parser over `argv` (without the program name); `usage` is printed
    /// for `-h` / `--help` and after an unknown flag.
    pub fn new(argv: impl IntoIterator<IntoIter = I>, usage: &'static str) -> Self {
        Parser {
            argv: argv.into_iter(),
            usage,
            flag: String::new(),
            inline: None,
        }
    }

    /// The next flag's name (in `--flag=value`, the part before `=`), or
    /// `None` after the last. `-h` and `--help` print the usage to stdout
    /// and exit with status 0.
    pub fn next_flag(&mut self) -> Option<String> {
        let arg = self.argv.next()?;
        if arg == "-h" || arg == "--help" {
            println!("{}", self.usage);
            std::process::exit(0);
        }
        (self.flag, self.inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg, None),
        };
        Some(self.flag.clone())
    }

    /// The current flag's value: the part after `=`, else the next argument.
    pub fn value(&mut self) -> Result<String, String> {
        self.inline
            .take()
            .or_else(|| self.argv.next())
            .ok_or(format!("{} needs a value", self.flag))
    }

    /// The current flag's value as a number; `_` in it is ignored.
    pub fn num<T: FromStr<Err: Display>>(&mut self) -> Result<T, String> {
        let v = self.value()?;
        self.parse(&v.replace('_', ""))
    }

    /// The current flag's value as a comma-separated list, each item trimmed.
    pub fn list(&mut self) -> Result<Vec<String>, String> {
        Ok(self
            .value()?
            .split(',')
            .map(|s| s.trim().to_string())
            .collect())
    }

    /// The current flag's value as a comma-separated list of sizes in bytes.
    pub fn sizes(&mut self) -> Result<Vec<usize>, String> {
        self.value()?
            .split(',')
            .map(|s| self.parse(s.trim()))
            .collect()
    }

    /// An error unless the current flag came without `=value` (for a flag
    /// that takes none).
    pub fn no_value(&self) -> Result<(), String> {
        match self.inline {
            Some(_) => Err(format!("{} takes no value", self.flag)),
            None => Ok(()),
        }
    }

    /// The error for a flag no one took: its name, then the usage.
    pub fn unknown(&self) -> String {
        format!("unknown argument {}\n{}", self.flag, self.usage)
    }

    fn parse<T: FromStr<Err: Display>>(&self, s: &str) -> Result<T, String> {
        s.parse().map_err(|e| format!("{}: {e}", self.flag))
    }
}

/// A number given per payload size (`--count-16 N`) or for every size
/// (`--count N`), such as a message count or a number of round trips.
#[derive(Clone, Debug, Default)]
pub struct PerSize<T> {
    each: BTreeMap<usize, T>,
    all: Option<T>,
}

impl<T: Copy + FromStr<Err: Display>> PerSize<T> {
    /// Takes `flag` if it is `name` (`--count`) or `name-SIZE`
    /// (`--count-16`); `Ok(false)` if it is neither.
    pub fn take<I: Iterator<Item = String>>(
        &mut self,
        name: &str,
        flag: &str,
        p: &mut Parser<I>,
    ) -> Result<bool, String> {
        if flag == name {
            self.all = Some(p.num()?);
        } else if let Some(size) = flag
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
        {
            let size = p.parse(size)?;
            self.each.insert(size, p.num()?);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The number for `size`: its own, else the every-size one, else
    /// `default(size)`.
    pub fn get(&self, size: usize, default: impl FnOnce(usize) -> T) -> T {
        self.each
            .get(&size)
            .copied()
            .or(self.all)
            .unwrap_or_else(|| default(size))
    }
}

/// The flags `stream` and `echo` share: `--sizes`, `--runs` and `--only`.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Payload sizes in bytes (default 16, 1024, 65536).
    pub sizes: Vec<usize>,
    /// Runs per client and size, at least 1 (default 3).
    pub runs: usize,
    /// The clients to run, all if `None`.
    pub only: Option<Vec<String>>,
}

impl Default for Suite {
    fn default() -> Self {
        Suite {
            sizes: vec![16, 1024, 65536],
            runs: 3,
            only: None,
        }
    }
}

impl Suite {
    /// Takes `flag` if it is one of the three; `Ok(false)` if not.
    pub fn take<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        p: &mut Parser<I>,
    ) -> Result<bool, String> {
        match flag {
            "--sizes" => self.sizes = p.sizes()?,
            "--runs" => self.runs = p.num::<usize>()?.max(1),
            "--only" => self.only = Some(p.list()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether `--only` leaves the client `name` in (no `--only`: all do).
    pub fn selected(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    }

    /// The clients of `all` that `--only` leaves in, in their order; an
    /// error if none is left.
    pub fn select<C>(&self, all: Vec<C>, name: impl Fn(&C) -> &str) -> Result<Vec<C>, String> {
        let chosen: Vec<C> = all.into_iter().filter(|c| self.selected(name(c))).collect();
        if chosen.is_empty() {
            return Err("--only matched no client".into());
        }
        Ok(chosen)
    }
}

/// The parsed arguments, or (on an error) the error on stderr and exit
/// status 2.
pub fn or_exit<T>(parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    })
}

/// The report line that gives the command to rerun binary `bin` with
/// `argv` (its arguments, without the program name).
pub fn command_line(bin: &str, argv: &[String]) -> String {
    format!(
        "command: `cargo run --release -p floodgate-bench --bin {bin} --{}{}`  ",
        if argv.is_empty() { "" } else { " " },
        argv.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(args: &[&str]) -> Parser<std::vec::IntoIter<String>> {
        Parser::new(
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "usage: test",
        )
    }

    /// Parses like `stream`: the suite's flags and `--count[-SIZE]`.
    fn stream(args: &[&str]) -> Result<(Suite, PerSize<u64>), String> {
        let (mut suite, mut counts) = (Suite::default(), PerSize::default());
        let mut p = parser(args);
        while let Some(flag) = p.next_flag() {
            if !suite.take(&flag, &mut p)? && !counts.take("--count", &flag, &mut p)? {
                return Err(p.unknown());
            }
        }
        Ok((suite, counts))
    }

    #[test]
    fn defaults() {
        let (suite, counts) = stream(&[]).unwrap();
        assert_eq!(suite.sizes, [16, 1024, 65536]);
        assert_eq!(suite.runs, 3);
        assert!(suite.only.is_none() && suite.selected("anything"));
        assert_eq!(counts.get(16, |_| 7), 7);
    }

    #[test]
    fn values_inline_or_next_with_separators() {
        let (suite, counts) = stream(&[
            "--sizes=16,1024",
            "--count-16",
            "20_000",
            "--count=5",
            "--runs",
            "0",
            "--only",
            "floodgate, raw-tcp",
        ])
        .unwrap();
        assert_eq!(suite.sizes, [16, 1024]);
        assert_eq!(suite.runs, 1, "--runs is at least 1");
        assert_eq!(counts.get(16, |_| 7), 20_000);
        assert_eq!(counts.get(1024, |_| 7), 5);
        assert!(suite.selected("raw-tcp") && !suite.selected("tungstenite"));
        let all = vec!["tungstenite", "raw-tcp", "floodgate"];
        assert_eq!(
            suite.select(all.clone(), |c| c).unwrap(),
            ["raw-tcp", "floodgate"]
        );
        let none = Suite {
            only: Some(vec!["nobody".into()]),
            ..Suite::default()
        };
        assert_eq!(
            none.select(all, |c| c).unwrap_err(),
            "--only matched no client"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(stream(&["--runs"]).unwrap_err(), "--runs needs a value");
        assert_eq!(
            stream(&["--count-x", "1"]).unwrap_err(),
            "--count-x: invalid digit found in string"
        );
        assert_eq!(
            stream(&["--sizes", "16,a"]).unwrap_err(),
            "--sizes: invalid digit found in string"
        );
        assert_eq!(
            stream(&["--counts=1"]).unwrap_err(),
            "unknown argument --counts\nusage: test"
        );
        let mut p = parser(&["--child-idle=1"]);
        p.next_flag();
        assert_eq!(p.no_value().unwrap_err(), "--child-idle takes no value");
    }

    #[test]
    fn command() {
        assert_eq!(
            command_line("echo", &[]),
            "command: `cargo run --release -p floodgate-bench --bin echo --`  "
        );
        assert_eq!(
            command_line("stream", &["--runs".into(), "3".into()]),
            "command: `cargo run --release -p floodgate-bench --bin stream -- --runs 3`  "
        );
    }
}
