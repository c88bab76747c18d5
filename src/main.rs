fn main() -> std::process::ExitCode {
    stevedore::main()
}
