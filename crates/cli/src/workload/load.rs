//! Loading initial rows: multi-row `INSERT`/`UPSERT` statements with typed parameters,
//! [`BATCH_ROWS`] rows per statement, and a progress bar (rows and rows/s) on a terminal.

use super::describe;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};

/// Rows per loading statement.
pub(crate) const BATCH_ROWS: u64 = 100;

/// A column to load: its name, the type its parameter is sent as, and the cast applied to the
/// parameter in the SQL (`::UUID` for a UUID sent as text; empty for none).
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: &'static str,
    pub ty: Type,
    pub cast: &'static str,
}

impl Column {
    pub(crate) fn new(name: &'static str, ty: Type, cast: &'static str) -> Column {
        Column { name, ty, cast }
    }
}

/// One row's parameter values, in column order.
pub(crate) type Row = Vec<Box<dyn ToSql + Sync + Send>>;

/// `<verb> INTO table (a, b) VALUES ($1, $2::UUID), ($3, $4::UUID)` for `rows` rows.
pub(crate) fn insert_sql(verb: &str, table: &str, columns: &[Column], rows: usize) -> String {
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    let mut sql = format!("{verb} INTO {table} ({}) VALUES ", names.join(", "));
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (i, column) in columns.iter().enumerate() {
            n += 1;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${n}{}", column.cast));
        }
        sql.push(')');
    }
    sql
}

/// A progress bar for loading `total` rows into `table`; drawn only on a terminal.
fn progress(table: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    match ProgressStyle::with_template(
        "{msg:>18} [{elapsed_precise}] {wide_bar} {pos}/{len} rows ({per_sec})",
    ) {
        Ok(style) => bar.set_style(style),
        // The template is a constant; keep the default style if it were ever refused.
        Err(e) => tracing::debug!(error = %e, "progress bar template refused"),
    }
    bar.set_message(format!("loading {table}"));
    bar
}

/// Loads rows `0..total` into `table`, row `i` given by `row(i)`, with `verb` (`INSERT` or
/// `UPSERT`); prints one line when done.
pub(crate) async fn load_rows(
    client: &Client,
    verb: &str,
    table: &str,
    columns: &[Column],
    total: u64,
    mut row: impl FnMut(u64) -> Row,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let bar = progress(table, total);
    let types: Vec<Type> = columns.iter().map(|c| c.ty.clone()).collect();
    let mut full_batch = None;
    let mut next = 0;
    while next < total {
        let rows = BATCH_ROWS.min(total - next);
        let sql = insert_sql(verb, table, columns, rows as usize);
        let types: Vec<Type> = (0..rows).flat_map(|_| types.iter().cloned()).collect();
        let statement = match (&full_batch, rows == BATCH_ROWS) {
            (Some(statement), true) => Statement::clone(statement),
            _ => {
                let prepared = client.prepare_typed(&sql, &types).await.map_err(|e| {
                    anyhow::anyhow!("cannot prepare {verb} INTO {table}: {}", describe(&e))
                })?;
                if rows == BATCH_ROWS {
                    full_batch = Some(prepared.clone());
                }
                prepared
            }
        };
        let values: Vec<Row> = (next..next + rows).map(&mut row).collect();
        let params: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .flatten()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        client.execute(&statement, &params).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot load rows {next}..{} into {table}: {}",
                next + rows,
                describe(&e)
            )
        })?;
        next += rows;
        bar.inc(rows);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "loaded {total} rows into {table} in {secs:.1}s ({:.0} rows/s)",
        if secs > 0.0 { total as f64 / secs } else { 0.0 }
    );
    Ok(())
}

/// The number of rows of `table`, through the simple query protocol (text results need no
/// knowledge of the server's integer type).
pub(crate) async fn count_rows(client: &Client, table: &str) -> anyhow::Result<u64> {
    let sql = format!("SELECT count(*) FROM {table}");
    let value = first_row(client, &sql)
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("{sql}: no result"))?;
    value
        .parse()
        .map_err(|_| anyhow::anyhow!("{sql}: not a count: {value:?}"))
}

/// The text values of the first row of `sql` (empty if no row).
pub(crate) async fn first_row(client: &Client, sql: &str) -> anyhow::Result<Vec<Option<String>>> {
    Ok(all_rows(client, sql)
        .await?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// The text values of every row of `sql`.
pub(crate) async fn all_rows(
    client: &Client,
    sql: &str,
) -> anyhow::Result<Vec<Vec<Option<String>>>> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| anyhow::anyhow!("{sql}: {}", describe(&e)))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_insert_numbers_parameters_in_order() {
        // Goal: parameters are numbered row by row, each with its column's cast.
        let columns = [
            Column::new("id", Type::TEXT, "::UUID"),
            Column::new("n", Type::INT8, ""),
        ];
        assert_eq!(
            insert_sql("INSERT", "t", &columns, 2),
            "INSERT INTO t (id, n) VALUES ($1::UUID, $2), ($3::UUID, $4)"
        );
        assert_eq!(
            insert_sql("UPSERT", "kv", &columns[1..], 1),
            "UPSERT INTO kv (n) VALUES ($1)"
        );
    }
}
