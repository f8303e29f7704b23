//! `roach sql`: the SQL shell, like `cockroach sql`.
//!
//! Connects over the PostgreSQL wire protocol (tokio-postgres, TLS by rustls with the ring
//! provider), then runs the `-e` statements, the statements piped on stdin, or an interactive
//! shell when stdin is a terminal. Statements go over the simple query protocol so any
//! statement works; results print as tables, CSV or TSV.
//!
//! Exit codes: 0 on success; 1 when a statement fails (`-e` and piped input stop at the first
//! error), the URL is invalid or the connection cannot be opened; 2 for flags clap rejects.
//!
//! Passwords are never shown: every URL printed goes through [`url::redact`] or
//! [`params::ConnParams::redacted_url`].

pub(crate) mod connect;
pub(crate) mod exec;
mod format;
mod history;
pub(crate) mod params;
mod repl;
mod split;
pub(crate) mod url;

use crate::security::SecurityArgs;
use anyhow::Context;
use connect::{ConnectError, Session};
use exec::StatementError;
pub use format::Format;
use params::{ConnParams, Given};
use std::io::{IsTerminal, Read, Write};
use tokio::runtime::Runtime;

/// Exit code when a statement fails, the URL is invalid or the connection cannot be opened.
pub const EXIT_ERROR: i32 = 1;

/// Flags of `roach sql`.
#[derive(Clone, clap::Args)]
pub struct SqlArgs {
    /// Connection URL: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE?sslmode=...&options=...
    /// The options parameter may be percent-encoded (-ccluster%3Dsystem) or not
    /// (-ccluster=system).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The node to connect to, HOST or HOST:PORT [default: localhost:26257]; overrides the URL.
    #[arg(long, value_name = "HOST:PORT")]
    pub host: Option<String>,
    /// The SQL user [default: root]; overrides the URL.
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// The current database [default: defaultdb]; overrides the URL.
    #[arg(long, short = 'd')]
    pub database: Option<String>,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Run this statement (may hold several, separated by `;`) and exit; repeatable. Stops at
    /// the first error with exit code 1.
    #[arg(short = 'e', long = "execute", value_name = "STMT")]
    pub execute: Vec<String>,
    /// How to print results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Redacts the password of `--url`.
impl std::fmt::Debug for SqlArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlArgs")
            .field("url", &self.url.as_deref().map(url::redact))
            .field("host", &self.host)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("security", &self.security)
            .field("execute", &self.execute)
            .field("format", &self.format)
            .finish()
    }
}

/// Runs `roach sql`; exits the process with [`EXIT_ERROR`] when a statement fails.
pub fn run(args: SqlArgs) -> anyhow::Result<()> {
    let code = run_to_exit_code(args)?;
    if code != 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}

fn run_to_exit_code(args: SqlArgs) -> anyhow::Result<i32> {
    run_after(args, &[])
}

/// Runs `roach sql` like [`run`], but first runs `first` (printing its results like any
/// statement's) right after connecting, then the `-e` statements, piped stdin or the shell;
/// returns the exit code instead of exiting the process (`roach demo` cleans up after it).
pub(crate) fn run_after(args: SqlArgs, first: &[String]) -> anyhow::Result<i32> {
    let resolved = ConnParams::resolve(&Given {
        url: args.url.as_deref(),
        host: args.host.as_deref(),
        user: args.user.as_deref(),
        database: args.database.as_deref(),
        certs_dir: Some(&args.security.certs_dir),
        insecure: args.security.insecure,
    });
    let mut params = match resolved {
        Ok(params) => params,
        Err(e) => {
            eprintln!("ERROR: {e}");
            return Ok(EXIT_ERROR);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let session = match open_session(&runtime, &mut params, stdin_is_terminal)? {
        Ok(session) => session,
        Err(e) => {
            eprintln!("ERROR: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("HINT: {hint}");
            }
            return Ok(EXIT_ERROR);
        }
    };

    if !first.is_empty() {
        let code = run_batch(&runtime, &session, first.iter().cloned(), args.format)?;
        if code != 0 {
            return Ok(code);
        }
    }
    if !args.execute.is_empty() {
        let statements = args.execute.iter().flat_map(|e| split::split_all(e));
        return run_batch(&runtime, &session, statements, args.format);
    }
    if stdin_is_terminal {
        repl::run(&runtime, params, session, args.format)?;
        return Ok(0);
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read statements from stdin")?;
    run_batch(
        &runtime,
        &session,
        split::split_all(&input).into_iter(),
        args.format,
    )
}

/// Connects; if the server wants a password that was not given, asks for it on the terminal
/// (without echo) and tries once more. The outer error is a failure to read the password.
fn open_session(
    runtime: &Runtime,
    params: &mut ConnParams,
    may_prompt: bool,
) -> anyhow::Result<Result<Session, ConnectError>> {
    let first = runtime.block_on(connect::connect(params));
    let result = match first {
        Err(ConnectError::PasswordNeeded { .. }) if may_prompt && params.password.is_none() => {
            let password = rpassword::prompt_password(format!(
                "Enter password for {}@{}: ",
                params.user,
                params.host_port()
            ))
            .context("cannot read the password from the terminal")?;
            params.password = Some(password);
            runtime.block_on(connect::connect(params))
        }
        other => other,
    };
    Ok(result)
}

/// Runs statements in order, stopping at the first error; returns the exit code.
fn run_batch(
    runtime: &Runtime,
    session: &Session,
    statements: impl Iterator<Item = String>,
    format: Format,
) -> anyhow::Result<i32> {
    for statement in statements {
        let result = runtime.block_on(async {
            let mut stdout = std::io::stdout().lock();
            exec::run_statement(&session.client, &statement, format, &mut stdout).await
        });
        match result {
            Ok(()) => {}
            Err(StatementError::Sql(e)) => {
                eprint!("{}", e.render());
                return Ok(EXIT_ERROR);
            }
            // The reader went away (`| head`): stop quietly.
            Err(StatementError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(0);
            }
            Err(StatementError::Output(e)) => {
                return Err(e).context("cannot write the results");
            }
        }
    }
    Ok(0)
}
