//! `cargo run --example fetch -- URL [options]`: the `eddy fetch` command (see `eddy::fetch`).

fn main() -> std::process::ExitCode {
    eddy::fetch::run_args(&std::env::args().skip(1).collect::<Vec<_>>())
}
