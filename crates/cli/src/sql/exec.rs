//! Running one statement over the simple query protocol and printing its results or its error.

use super::format::{Format, ResultSet, command_tag};
use std::io::Write;
use tokio_postgres::{Client, SimpleQueryMessage};

/// A statement failed; printed as `ERROR:`, `SQLSTATE:`, `DETAIL:`, `HINT:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub message: String,
    pub code: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// The connection is gone: the shell must reconnect before the next statement.
    pub connection_lost: bool,
}

impl SqlError {
    fn from_client(e: &tokio_postgres::Error) -> SqlError {
        if let Some(db) = e.as_db_error() {
            return SqlError {
                message: db.message().to_string(),
                code: db.code().code().to_string(),
                detail: db.detail().map(str::to_string),
                hint: db.hint().map(str::to_string),
                // FATAL and PANIC end the session.
                connection_lost: matches!(db.severity(), "FATAL" | "PANIC"),
            };
        }
        let message = error_chain(e);
        let lost = e.is_closed() || message.starts_with("error communicating with the server");
        SqlError {
            message,
            // connection_failure, or protocol_violation for anything else client-side.
            code: if lost { "08006" } else { "08P01" }.to_string(),
            detail: None,
            hint: None,
            connection_lost: lost,
        }
    }

    /// The lines printed to stderr.
    pub fn render(&self) -> String {
        let mut out = format!("ERROR: {}\nSQLSTATE: {}\n", self.message, self.code);
        if let Some(detail) = &self.detail {
            out.push_str(&format!("DETAIL: {detail}\n"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("HINT: {hint}\n"));
        }
        out
    }
}

/// An error and its sources, joined by `: ` (tokio-postgres errors show only their kind).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// Why a statement did not complete.
#[derive(Debug)]
pub enum StatementError {
    Sql(SqlError),
    /// Writing the results failed (a closed pipe, a full disk).
    Output(std::io::Error),
}

/// Runs `statement` and writes its results to `out` in `format`: a table (or CSV/TSV) for each
/// result with columns, the command tag for each without.
pub async fn run_statement(
    client: &Client,
    statement: &str,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), StatementError> {
    let messages = client
        .simple_query(statement)
        .await
        .map_err(|e| StatementError::Sql(SqlError::from_client(&e)))?;
    write_results(statement, &messages, format, out).map_err(StatementError::Output)
}

/// Writes the messages of one simple query.
fn write_results(
    statement: &str,
    messages: &[SimpleQueryMessage],
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut current: Option<ResultSet> = None;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                current = Some(ResultSet {
                    columns: columns.iter().map(|c| c.name().to_string()).collect(),
                    rows: Vec::new(),
                });
            }
            SimpleQueryMessage::Row(row) => {
                let set = current.get_or_insert_with(|| ResultSet {
                    columns: row.columns().iter().map(|c| c.name().to_string()).collect(),
                    rows: Vec::new(),
                });
                set.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(rows) => match current.take() {
                Some(set) => out.write_all(set.render(format).as_bytes())?,
                None => writeln!(out, "{}", command_tag(statement, *rows))?,
            },
            _ => {}
        }
    }
    if let Some(set) = current {
        out.write_all(set.render(format).as_bytes())?;
    }
    out.flush()
}

/// The first value of the first row of `query`, or `None` if it fails or returns nothing.
pub async fn query_value(client: &Client, query: &str) -> Option<String> {
    let messages = client.simple_query(query).await.ok()?;
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rendering() {
        // Goal: errors print ERROR, SQLSTATE, then DETAIL and HINT only when present.
        let mut e = SqlError {
            message: "relation \"t\" does not exist".into(),
            code: "42P01".into(),
            detail: None,
            hint: None,
            connection_lost: false,
        };
        assert_eq!(
            e.render(),
            "ERROR: relation \"t\" does not exist\nSQLSTATE: 42P01\n"
        );
        e.detail = Some("d".into());
        e.hint = Some("try again".into());
        assert_eq!(
            e.render(),
            "ERROR: relation \"t\" does not exist\nSQLSTATE: 42P01\nDETAIL: d\nHINT: try again\n"
        );
    }

    #[test]
    fn results_without_rows_print_tag() {
        // Goal: a statement with no row description prints its command tag.
        let mut out = Vec::new();
        write_results(
            "insert into t values (1)",
            &[SimpleQueryMessage::CommandComplete(1)],
            Format::Table,
            &mut out,
        )
        .expect("write to a Vec");
        assert_eq!(String::from_utf8_lossy(&out), "INSERT 0 1\n");
    }
}
