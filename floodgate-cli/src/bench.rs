//! `floodgate bench`: not written yet (being built).

use crate::error::CliError;

/// Options of `floodgate bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> Result<(), CliError> {
    Err(CliError::Usage(
        "`floodgate bench` is not implemented yet".into(),
    ))
}
