//! `floodgate connect URL`: not written yet (being built).

use crate::error::CliError;

/// Options of `floodgate connect`.
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// The server's URL (ws://...).
    pub url: String,
}

pub fn run(_args: ConnectArgs) -> Result<(), CliError> {
    Err(CliError::Usage(
        "`floodgate connect` is not implemented yet".into(),
    ))
}
