//! The `moltres` binary; see the `moltres_sql` crate.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = moltres_sql::args::Args::parse();
    if let Err(e) = moltres::logging::init() {
        eprintln!("Error: {e}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let code = runtime.block_on(moltres_sql::run(args));
    // Queries cancelled by Ctrl-C or a closed pipe may leave tasks behind.
    runtime.shutdown_background();
    std::process::ExitCode::from(code as u8)
}
