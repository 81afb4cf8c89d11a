fn main() -> std::process::ExitCode {
    icsmail::cli::run()
}
