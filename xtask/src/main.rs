//! `cargo xtask`: see `lib.rs`.

fn main() -> std::process::ExitCode {
    xtask::main()
}
