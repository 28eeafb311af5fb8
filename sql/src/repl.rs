//! The interactive loop: line editing and persistent history (rustyline),
//! statements spanning lines until `;`, Ctrl-C clears the line or cancels the
//! running query, Ctrl-D exits.

use std::borrow::Cow;
use std::path::PathBuf;

use moltres::statements::is_complete;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Editor, Helper};

use crate::shell::{Outcome, Shell};

/// Tells rustyline when the input is a whole statement (or a meta command).
struct InputHelper;

impl Validator for InputHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.starts_with('\\') || is_complete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Completer for InputHelper {
    type Candidate = String;
}

impl Hinter for InputHelper {
    type Hint = String;
}

impl Highlighter for InputHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Helper for InputHelper {}

/// `$MOLTRES_HISTORY`, else `~/.moltres_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOLTRES_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".moltres_history"))
}

/// Runs the REPL until `\q` or Ctrl-D. Errors are printed and the loop goes on.
pub async fn run(shell: &mut Shell, quiet: bool) -> rustyline::Result<()> {
    let mut editor: Editor<InputHelper, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(InputHelper));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    if !quiet {
        eprintln!(
            "Moltres {} — SQL over databases and files. \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION")
        );
    }
    loop {
        match editor.readline("moltres> ") {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                if let Some(path) = &history {
                    let _ = editor.append_history(path);
                }
                let result = if line.trim_start().starts_with('\\') {
                    shell.meta(line.trim()).await
                } else {
                    shell.run_sql(&line).await
                };
                match result {
                    Ok(Outcome::Quit) => break,
                    Ok(Outcome::Continue) => {}
                    Err(failed) => eprintln!("Error: {}", moltres::secrets::scrub(&failed.0)),
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
