//! The `moderation` command: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    moderation::cli::run(moderation::cli::Cli::parse())
}
