//! The `moltres` SQL shell: a REPL, `-c` and `-f` over one Moltres session.
//!
//! The contract programs rely on: in csv, tsv, json and ndjson formats stdout
//! carries only results (csv/tsv with a header row); messages, timings and
//! errors go to stderr; the exit status is 0, or 1 when a statement fails
//! (the script stops there), 2 for bad flags, 130 when Ctrl-C (SIGINT)
//! stopped a script (`-c`, `-f` or piped input) after its statement was
//! rolled back.

pub mod args;
mod interrupts;
pub mod print;
mod repl;
pub mod shell;

use std::io::{IsTerminal, Read};

use moltres::{MemoryLimit, Moltres};

use crate::args::Args;
use crate::print::Format;
use crate::shell::{Outcome, Shell};

/// Builds the session from flags, environment and config file.
async fn session(args: &Args) -> Result<Moltres, String> {
    let mut builder = Moltres::builder();
    if let Some(limit) = &args.memory_limit {
        let limit = MemoryLimit::parse(limit)
            .map_err(|m| format!("invalid setting --memory-limit: {m}"))?;
        builder = builder.memory_limit(limit);
    }
    if let Some(dir) = &args.spill_dir {
        builder = builder.spill_dir(dir);
    }
    if let Some(rows) = args.batch_size {
        builder = builder.batch_size(rows);
    }
    if let Some(n) = args.partitions {
        builder = builder.target_partitions(n);
    }
    if let Some(path) = &args.config {
        builder = builder.config_file(path);
    }
    builder.build().await.map_err(|e| e.to_string())
}

/// The exit status of a script stopped by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// Runs the shell; returns the process exit status.
pub async fn run(args: Args) -> i32 {
    let db = match session(&args).await {
        Ok(db) => db,
        Err(message) => {
            eprintln!("Error: {}", moltres::secrets::scrub(&message));
            return 1;
        }
    };
    let stdout_tty = std::io::stdout().is_terminal();
    let stdin_tty = std::io::stdin().is_terminal();
    let format = args.format.unwrap_or(if stdout_tty {
        Format::Table
    } else {
        Format::Csv
    });
    let mut shell = Shell::new(db, format);
    shell.max_rows = args.max_rows;
    shell.timing = stdout_tty && !args.quiet;
    shell.progress = std::io::stderr().is_terminal() && !args.quiet;

    let scripted = !args.commands.is_empty() || !args.files.is_empty();
    if !scripted && stdin_tty {
        shell.interactive = true;
        return match repl::run(&mut shell, args.quiet).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: terminal: {e}");
                1
            }
        };
    }

    let mut inputs = Vec::new();
    for command in &args.commands {
        inputs.push(Ok(command.clone()));
    }
    for file in &args.files {
        inputs.push(read_input(file));
    }
    if !scripted {
        inputs.push(read_input("-"));
    }
    for input in inputs {
        let text = match input {
            Ok(text) => text,
            Err(message) => {
                eprintln!("Error: {}", moltres::secrets::scrub(&message));
                return 1;
            }
        };
        // Ctrl-C stops the script: the running statement is dropped, which
        // rolls back its writes and starts their cleanups (a half-filled
        // MySQL table is dropped), and the caller waits for those.
        let mark = interrupts::mark();
        let outcome = tokio::select! {
            outcome = shell.run_text(&text) => outcome,
            _ = interrupts::after(mark) => {
                eprintln!("Error: interrupted");
                return INTERRUPTED;
            }
        };
        match outcome {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::Quit) => return 0,
            Err(failed) => {
                eprintln!("Error: {}", moltres::secrets::scrub(&failed.0));
                return 1;
            }
        }
    }
    0
}

fn read_input(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read '{file}': {e}"))
    }
}
