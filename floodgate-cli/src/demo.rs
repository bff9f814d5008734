//! `floodgate demo`: not written yet (being built).

use crate::error::CliError;

/// Options of `floodgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> Result<(), CliError> {
    Err(CliError::Usage(
        "`floodgate demo` is not implemented yet".into(),
    ))
}
