//! `floodgate serve`: not written yet (being built).

use crate::error::CliError;

/// Options of `floodgate serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> Result<(), CliError> {
    Err(CliError::Usage(
        "`floodgate serve` is not implemented yet".into(),
    ))
}
