//! l5d-ecs: the command line. Everything is in the library (src/lib.rs).

fn main() -> std::process::ExitCode {
    l5d_ecs::main()
}
