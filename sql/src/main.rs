//! The `moltres` binary; see the `moltres_sql` crate.

use clap::Parser;

/// The stack of the thread that reads and plans statements.
const SHELL_STACK: usize = 64 << 20;

/// The stack of each runtime worker (which runs queries).
const WORKER_STACK: usize = 16 << 20;

fn main() -> std::process::ExitCode {
    // Passwords on the command line are hidden from every message, clap's
    // own errors included (they quote the argument they refuse).
    let args: Vec<String> = std::env::args().collect();
    for arg in &args {
        moltres::secrets::remember_sql(arg);
        moltres::secrets::remember_url(arg);
    }
    // And the config file's, which is read only after the arguments parse.
    let config = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--config=").map(str::to_string))
        })
        .or_else(|| std::env::var("MOLTRES_CONFIG").ok());
    if let Some(text) = config.and_then(|path| std::fs::read_to_string(path).ok()) {
        for line in text.lines() {
            moltres::secrets::remember_sql(line);
            moltres::secrets::remember_url(line.trim());
        }
    }
    let args = match moltres_sql::args::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let text = moltres::secrets::scrub(&e.render().to_string()).into_owned();
            if e.use_stderr() {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            return std::process::ExitCode::from(e.exit_code() as u8);
        }
    };
    // A panic's message may quote a URL: print it without the passwords seen.
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        eprintln!(
            "thread '{}' {}",
            thread.name().unwrap_or("<unnamed>"),
            moltres::secrets::scrub(&info.to_string())
        );
    }));
    // `-q`: the libraries' own warnings (a pool's reconnect notices) stay
    // out of stderr; Moltres's warnings and every error still show.
    // MOLTRES_LOG / RUST_LOG, when set, decide.
    let quiet = args.quiet;
    let logging = moltres::logging::init_from(|key| {
        std::env::var(key).ok().or_else(|| {
            (quiet && key == "MOLTRES_LOG" && std::env::var_os("RUST_LOG").is_none())
                .then(|| "moltres=warn,error".to_string())
        })
    });
    if let Err(e) = logging {
        eprintln!("Error: {e}");
        return std::process::ExitCode::from(2);
    }
    // Plans and expressions are walked recursively, where statements are
    // planned (the thread below) and on the worker threads (an `AND` chain
    // of 500 `<>` terms is evaluated there). The guard's depth limits
    // (moltres::guard) leave room on these stacks; tokio's default of
    // 2 MiB and the main thread's 8 MiB overflowed, which aborts the
    // process (a stack overflow cannot be caught).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let shell = std::thread::Builder::new()
        .name("moltres-shell".to_string())
        .stack_size(SHELL_STACK)
        .spawn(move || {
            let code = runtime.block_on(async {
                let code = moltres_sql::run(args).await;
                // A statement cancelled by its timeout or Ctrl-C may have
                // left a cleanup running (dropping a half-filled table): let
                // it finish.
                moltres::cleanups_done(std::time::Duration::from_secs(20)).await;
                code
            });
            (code, runtime)
        });
    let (code, runtime) = match shell.map(|t| t.join()) {
        Ok(Ok(result)) => result,
        _ => {
            eprintln!("Error: the shell's thread failed");
            return std::process::ExitCode::from(1);
        }
    };
    // Queries cancelled by Ctrl-C or a closed pipe may leave tasks behind.
    runtime.shutdown_background();
    std::process::ExitCode::from(code as u8)
}
