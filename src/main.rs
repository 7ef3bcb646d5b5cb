//! The `moderation` command: parses the command line and hands over to the library.

use clap::Parser;

/// A submission allocates and frees a few hundred small blocks from several threads; mimalloc's
/// thread-local free lists serve them faster than glibc's malloc (measured: BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    moderation::cli::run(moderation::cli::Cli::parse())
}
