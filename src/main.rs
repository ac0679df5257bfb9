//! The `modelslim` command line: the same core as the page, natively.

#[cfg(not(target_family = "wasm"))]
mod cli;

#[cfg(not(target_family = "wasm"))]
fn main() {
    std::process::exit(cli::main());
}

#[cfg(target_family = "wasm")]
fn main() {}
