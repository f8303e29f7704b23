//! The interactive shell: line editing and history (rustyline), statements spanning lines until
//! `;`, a prompt naming the session, meta-commands, Ctrl-C to cancel, and reconnecting after a
//! lost connection.

use super::connect::{self, Session};
use super::exec::{self, StatementError};
use super::format::Format;
use super::history;
use super::params::ConnParams;
use super::split::{LineBuffer, leading_words};
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use std::path::PathBuf;
use tokio::runtime::Runtime;

/// The history file, in the home directory.
pub const HISTORY_FILE: &str = ".roach_sql_history";

const HELP: &str = "\
You are using 'roach sql', roach's interactive SQL shell.
Type SQL statements ending with ';'; a statement may span several lines.

  \\q, quit, exit   leave the shell (also Ctrl-D)
  \\?, help         print this help
  Ctrl-C           clear the statement being typed, or cancel a running one

Results are printed as tables; start the shell with --format csv|tsv for other formats.
";

/// What the prompt shows: `user@host:port/virtual-cluster:database> `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptInfo {
    pub user: String,
    pub host_port: String,
    pub cluster: Option<String>,
    pub database: String,
    /// Whether the server answers `SHOW database` (so it is worth asking after `USE`/`SET`).
    pub server_reports_database: bool,
}

impl PromptInfo {
    /// Asks the server for the virtual cluster and database, falling back to the connection
    /// parameters (`-ccluster=NAME` in the options, the URL's database).
    pub async fn fetch(session: &Session, params: &ConnParams) -> PromptInfo {
        let cluster = exec::query_value(&session.client, "SHOW virtual_cluster_name")
            .await
            .filter(|c| !c.is_empty())
            .or_else(|| params.cluster_option());
        let database = exec::query_value(&session.client, "SHOW database").await;
        PromptInfo {
            user: params.user.clone(),
            host_port: params.host_port(),
            cluster,
            server_reports_database: database.is_some(),
            database: database.unwrap_or_else(|| params.database.clone()),
        }
    }

    /// The main prompt.
    pub fn prompt(&self) -> String {
        match &self.cluster {
            Some(cluster) => format!(
                "{}@{}/{}:{}> ",
                self.user, self.host_port, cluster, self.database
            ),
            None => format!("{}@{}/{}> ", self.user, self.host_port, self.database),
        }
    }

    /// The prompt of a statement's next line: `-> ` aligned under the main prompt's `> `.
    pub fn continuation(&self) -> String {
        let width = self.prompt().chars().count();
        format!("{:>width$}", "-> ")
    }
}

/// A line that is a shell command rather than SQL (only at the start of a statement).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Meta {
    Quit,
    Help,
    Unknown(String),
}

fn meta_command(line: &str) -> Option<Meta> {
    let line = line.trim();
    let word = line.strip_suffix(';').unwrap_or(line).trim();
    match word {
        "\\q" | "\\quit" | "quit" | "exit" => Some(Meta::Quit),
        "\\?" | "help" => Some(Meta::Help),
        _ if line.starts_with('\\') => Some(Meta::Unknown(line.to_string())),
        _ => None,
    }
}

/// Whether a statement may change the current database.
fn may_change_database(statement: &str) -> bool {
    matches!(
        leading_words(statement, 1).first().map(String::as_str),
        Some("USE" | "SET" | "RESET")
    )
}

struct Shell<'a> {
    runtime: &'a Runtime,
    params: ConnParams,
    session: Option<Session>,
    format: Format,
    prompt: PromptInfo,
}

/// Runs the interactive shell until `\q` or Ctrl-D. SQL errors are printed and the shell goes
/// on.
pub fn run(
    runtime: &Runtime,
    params: ConnParams,
    session: Session,
    format: Format,
) -> anyhow::Result<()> {
    let mut editor = DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(HISTORY_FILE));
    if let Some(path) = &history {
        // A missing history file is normal on first use.
        let _ = editor.load_history(path);
        // A file written before passwords were kept out of it is scrubbed now.
        forget_passwords(&mut editor, path);
    }
    let prompt = runtime.block_on(PromptInfo::fetch(&session, &params));
    let mut shell = Shell {
        runtime,
        params,
        session: Some(session),
        format,
        prompt,
    };
    println!("# Welcome to the roach SQL shell. Type \\? for help, \\q to quit.");
    println!("# Connected to {}", shell.params.redacted_url());
    let mut buffer = LineBuffer::default();
    loop {
        let prompt = if buffer.is_empty() {
            shell.prompt.prompt()
        } else {
            shell.prompt.continuation()
        };
        match editor.readline(&prompt) {
            Ok(line) => {
                if buffer.is_empty()
                    && let Some(meta) = meta_command(&line)
                {
                    record(&mut editor, line.trim());
                    match meta {
                        Meta::Quit => break,
                        Meta::Help => print!("{HELP}"),
                        Meta::Unknown(command) => {
                            eprintln!("unknown command {command}; type \\? for help")
                        }
                    }
                    continue;
                }
                for statement in buffer.push_line(&line) {
                    record(&mut editor, &format!("{statement};"));
                    shell.execute(&statement);
                }
            }
            Err(ReadlineError::Interrupted) => buffer.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(path) = &history
        && let Err(e) = editor.save_history(path)
    {
        eprintln!(
            "warning: cannot save the history to {}: {e}",
            path.display()
        );
    }
    Ok(())
}

/// Adds `entry` to the history unless it may hold a password (see [`history::may_record`]).
fn record(editor: &mut DefaultEditor, entry: &str) {
    if history::may_record(entry) {
        let _ = editor.add_history_entry(entry);
    }
}

/// Drops loaded history entries that may hold a password, and rewrites the file without them.
fn forget_passwords(editor: &mut DefaultEditor, path: &std::path::Path) {
    use rustyline::history::History;
    let entries: Vec<String> = editor.history().iter().cloned().collect();
    if entries.iter().all(|e| history::may_record(e)) {
        return;
    }
    let _ = editor.clear_history();
    for e in entries.iter().filter(|e| history::may_record(e)) {
        let _ = editor.history_mut().add(e);
    }
    let saved = if editor.history().is_empty() {
        std::fs::write(path, b"").map_err(rustyline::error::ReadlineError::from)
    } else {
        editor.save_history(path)
    };
    if let Err(e) = saved {
        eprintln!(
            "warning: cannot remove entries holding passwords from {}: {e}",
            path.display()
        );
    }
}

impl Shell<'_> {
    /// Runs one statement, printing its results or its error; reconnects first if the
    /// connection was lost.
    fn execute(&mut self, statement: &str) {
        // Let the connection task notice a connection closed while the shell was idle.
        self.runtime.block_on(tokio::task::yield_now());
        if self.session.as_ref().is_none_or(|s| s.client.is_closed()) {
            eprintln!(
                "connection lost; reconnecting to {}",
                self.params.redacted_url()
            );
            match self.runtime.block_on(connect::connect(&self.params)) {
                Ok(session) => {
                    self.prompt = self
                        .runtime
                        .block_on(PromptInfo::fetch(&session, &self.params));
                    self.session = Some(session);
                }
                Err(e) => {
                    self.session = None;
                    eprintln!("ERROR: {e}");
                    if let Some(hint) = e.hint() {
                        eprintln!("HINT: {hint}");
                    }
                    return;
                }
            }
        }
        let Some(session) = &self.session else {
            return;
        };
        let format = self.format;
        let result = self.runtime.block_on(async {
            let mut stdout = std::io::stdout().lock();
            let run = exec::run_statement(&session.client, statement, format, &mut stdout);
            tokio::pin!(run);
            tokio::select! {
                result = &mut run => result,
                _ = tokio::signal::ctrl_c() => {
                    if let Err(e) = session.cancel().await {
                        eprintln!("cannot cancel the statement: {e}");
                    }
                    run.await
                }
            }
        });
        match result {
            Ok(()) => {
                if self.prompt.server_reports_database
                    && may_change_database(statement)
                    && let Some(db) = self
                        .runtime
                        .block_on(exec::query_value(&session.client, "SHOW database"))
                {
                    self.prompt.database = db;
                }
            }
            Err(StatementError::Sql(e)) => {
                eprint!("{}", e.render());
                if e.connection_lost {
                    self.session = None;
                }
            }
            Err(StatementError::Output(e)) => eprintln!("cannot write the results: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(cluster: Option<&str>) -> PromptInfo {
        PromptInfo {
            user: "root".into(),
            host_port: "localhost:26257".into(),
            cluster: cluster.map(str::to_string),
            database: "defaultdb".into(),
            server_reports_database: true,
        }
    }

    #[test]
    fn prompt_with_and_without_cluster() {
        // Goal: the prompt is user@host:port/cluster:database> and omits the cluster when
        // unknown; the continuation prompt lines its `> ` up with the main prompt's.
        assert_eq!(
            info(Some("system")).prompt(),
            "root@localhost:26257/system:defaultdb> "
        );
        assert_eq!(info(None).prompt(), "root@localhost:26257/defaultdb> ");
        let p = info(None);
        assert_eq!(p.continuation().chars().count(), p.prompt().chars().count());
        assert!(p.continuation().ends_with("-> "));
    }

    #[test]
    fn meta_commands() {
        // Goal: quit/help commands are recognised with optional `;` and spaces; other
        // backslash commands are unknown; SQL is not a meta-command.
        assert_eq!(meta_command("\\q"), Some(Meta::Quit));
        assert_eq!(meta_command("  quit  "), Some(Meta::Quit));
        assert_eq!(meta_command("exit;"), Some(Meta::Quit));
        assert_eq!(meta_command("\\?"), Some(Meta::Help));
        assert_eq!(meta_command("\\x"), Some(Meta::Unknown("\\x".into())));
        assert_eq!(meta_command("select 1;"), None);
        assert_eq!(meta_command("exit_code"), None);
    }

    #[test]
    fn database_changing_statements() {
        // Goal: only USE/SET/RESET trigger re-reading the current database.
        assert!(may_change_database("use movr"));
        assert!(may_change_database("SET database = movr"));
        assert!(!may_change_database("select 1"));
    }
}
