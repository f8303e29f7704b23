//! Rendering query results: ASCII tables like `cockroach sql`, CSV and TSV, and command tags.

use super::split::leading_words;
use comfy_table::{ContentLineStyle, LineStyle, Table, TableStyle};

/// How result rows are printed (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An ASCII table with a header, a `-` separator and a `(N rows)` footer.
    Table,
    /// RFC 4180 CSV: a header line, then one line per row; no footer.
    Csv,
    /// Like CSV, separated by tabs.
    Tsv,
}

/// What NULL looks like in every format.
pub const NULL: &str = "NULL";

/// The rows of one statement's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultSet {
    pub columns: Vec<String>,
    /// One entry per row, one value per column; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

impl ResultSet {
    /// Renders the result in `format`, ending with a newline.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.render_table(),
            Format::Csv => self.render_delimited(','),
            Format::Tsv => self.render_delimited('\t'),
        }
    }

    fn render_table(&self) -> String {
        const STYLE: TableStyle = TableStyle::new()
            .header_lines(ContentLineStyle::none().junction('|'))
            .header_separator(LineStyle::none().fill('-').junction('+'))
            .content_lines(ContentLineStyle::none().junction('|'));
        let mut out = String::new();
        if !self.columns.is_empty() {
            let mut table = Table::new();
            table.load_style(STYLE);
            table.set_header(self.columns.iter().map(String::as_str));
            for row in &self.rows {
                table.add_row(row.iter().map(|v| v.as_deref().unwrap_or(NULL)));
            }
            out.push_str(&table.trim_fmt());
            out.push('\n');
        }
        out.push_str(&row_count_footer(self.rows.len()));
        out.push('\n');
        out
    }

    fn render_delimited(&self, delimiter: char) -> String {
        let mut out = String::new();
        let mut line = |fields: &mut dyn Iterator<Item = &str>| {
            for (i, field) in fields.enumerate() {
                if i > 0 {
                    out.push(delimiter);
                }
                out.push_str(&quote_field(field, delimiter));
            }
            out.push('\n');
        };
        line(&mut self.columns.iter().map(String::as_str));
        for row in &self.rows {
            line(&mut row.iter().map(|v| v.as_deref().unwrap_or(NULL)));
        }
        out
    }
}

/// `(1 row)`, `(N rows)`.
pub fn row_count_footer(rows: usize) -> String {
    if rows == 1 {
        "(1 row)".to_string()
    } else {
        format!("({rows} rows)")
    }
}

/// Quotes a CSV/TSV field when it holds the delimiter, a double quote, a line break or leading
/// or trailing whitespace (RFC 4180); inner double quotes are doubled. An empty string is quoted
/// so it reads back differently from a missing field.
pub fn quote_field(field: &str, delimiter: char) -> String {
    let needs_quotes = field.is_empty()
        || field.contains([delimiter, '"', '\n', '\r'])
        || field.starts_with(char::is_whitespace)
        || field.ends_with(char::is_whitespace);
    if needs_quotes {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// The line printed for a statement that returned no rows. tokio-postgres reports only the
/// affected-row count, not the server's tag, so the tag is named from the statement's leading
/// keywords, as PostgreSQL would: `INSERT 0 3`, `UPDATE 2`, `DELETE 1`, `CREATE TABLE`, `SET`.
pub fn command_tag(statement: &str, rows: u64) -> String {
    let words = leading_words(statement, 4);
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match word(0) {
        "" => "OK".to_string(),
        "INSERT" => format!("INSERT 0 {rows}"),
        verb @ ("UPDATE" | "DELETE" | "UPSERT" | "MERGE" | "COPY" | "FETCH" | "MOVE") => {
            format!("{verb} {rows}")
        }
        verb @ ("CREATE" | "DROP" | "ALTER") => {
            // Skip modifiers to reach the object: CREATE OR REPLACE VIEW, CREATE UNIQUE INDEX.
            let object: Vec<&str> = words[1..]
                .iter()
                .map(String::as_str)
                .skip_while(|w| {
                    matches!(
                        *w,
                        "OR" | "REPLACE"
                            | "UNIQUE"
                            | "TEMP"
                            | "TEMPORARY"
                            | "UNLOGGED"
                            | "MATERIALIZED"
                    )
                })
                .collect();
            match object.as_slice() {
                ["VIRTUAL", "CLUSTER", ..] => format!("{verb} VIRTUAL CLUSTER"),
                [object, ..] => format!("{verb} {object}"),
                [] => verb.to_string(),
            }
        }
        "SET" if word(1) == "CLUSTER" && word(2) == "SETTING" => "SET CLUSTER SETTING".into(),
        "START" if word(1) == "TRANSACTION" => "BEGIN".to_string(),
        "END" => "COMMIT".to_string(),
        verb => verb.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(columns: &[&str], rows: &[&[Option<&str>]]) -> ResultSet {
        ResultSet {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
                .collect(),
        }
    }

    #[test]
    fn table_layout_and_footer() {
        // Goal: the table has a header, a `-`/`+` separator, left-aligned values, NULL shown as
        // `NULL`, no trailing spaces, and a `(N rows)` footer.
        let out = rs(
            &["id", "name"],
            &[&[Some("1"), Some("alice")], &[Some("22"), None]],
        )
        .render(Format::Table);
        assert_eq!(
            out,
            " id | name\n----+-------\n 1  | alice\n 22 | NULL\n(2 rows)\n"
        );
    }

    #[test]
    fn table_footer_singular_and_empty() {
        // Goal: one row says `(1 row)`; no rows still prints the header and `(0 rows)`.
        let one = rs(&["?column?"], &[&[Some("1")]]).render(Format::Table);
        assert!(one.ends_with("\n(1 row)\n"), "{one}");
        let none = rs(&["a"], &[]).render(Format::Table);
        assert_eq!(none, " a\n---\n(0 rows)\n");
        assert_eq!(row_count_footer(0), "(0 rows)");
        assert_eq!(row_count_footer(1), "(1 row)");
        assert_eq!(row_count_footer(1000), "(1000 rows)");
    }

    #[test]
    fn table_multiline_value() {
        // Goal: a value with a line break spans lines inside its cell instead of breaking the
        // table.
        let out = rs(&["v"], &[&[Some("a\nb")]]).render(Format::Table);
        assert_eq!(out, " v\n---\n a\n b\n(1 row)\n");
    }

    #[test]
    fn csv_output() {
        // Goal: CSV has a header and rows, quotes fields with commas, quotes, line breaks and
        // edge whitespace, doubles inner quotes, prints NULL as `NULL`, and has no footer.
        let out = rs(
            &["a", "b,c"],
            &[
                &[Some("plain"), Some("x,y")],
                &[Some("say \"hi\""), Some("line1\nline2")],
                &[None, Some("")],
                &[Some(" pad"), Some("tab\tok")],
            ],
        )
        .render(Format::Csv);
        assert_eq!(
            out,
            "a,\"b,c\"\nplain,\"x,y\"\n\"say \"\"hi\"\"\",\"line1\nline2\"\nNULL,\"\"\n\" pad\",tab\tok\n"
        );
    }

    #[test]
    fn tsv_output() {
        // Goal: TSV separates by tabs, quotes fields holding tabs or quotes, and leaves commas
        // alone.
        let out = rs(
            &["a", "b"],
            &[&[Some("x,y"), Some("t\tab")], &[Some("q\""), None]],
        )
        .render(Format::Tsv);
        assert_eq!(out, "a\tb\nx,y\t\"t\tab\"\n\"q\"\"\"\tNULL\n");
    }

    #[test]
    fn quote_field_rules() {
        // Goal: quoting happens exactly when needed.
        assert_eq!(quote_field("abc", ','), "abc");
        assert_eq!(quote_field("a,b", ','), "\"a,b\"");
        assert_eq!(quote_field("a,b", '\t'), "a,b");
        assert_eq!(quote_field("cr\r", ','), "\"cr\r\"");
        assert_eq!(quote_field("\"", ','), "\"\"\"\"");
        assert_eq!(quote_field("", ','), "\"\"");
    }

    #[test]
    fn command_tags() {
        // Goal: statements without rows get a PostgreSQL-style tag named from their leading
        // keywords (past comments), with the row count where PostgreSQL shows one.
        assert_eq!(
            command_tag("insert into t values (1), (2)", 2),
            "INSERT 0 2"
        );
        assert_eq!(command_tag("UPDATE t SET a = 1", 5), "UPDATE 5");
        assert_eq!(command_tag("delete from t", 0), "DELETE 0");
        assert_eq!(command_tag("upsert into t values (1)", 1), "UPSERT 1");
        assert_eq!(command_tag("create table t (a int)", 0), "CREATE TABLE");
        assert_eq!(
            command_tag("create or replace view v as select 1", 0),
            "CREATE VIEW"
        );
        assert_eq!(
            command_tag("create unique index i on t (a)", 0),
            "CREATE INDEX"
        );
        assert_eq!(command_tag("CREATE USER bob", 0), "CREATE USER");
        assert_eq!(
            command_tag("create virtual cluster app", 0),
            "CREATE VIRTUAL CLUSTER"
        );
        assert_eq!(command_tag("drop database d cascade", 0), "DROP DATABASE");
        assert_eq!(
            command_tag("set cluster setting kv.rangefeed.enabled = true", 0),
            "SET CLUSTER SETTING"
        );
        assert_eq!(command_tag("set search_path = x", 0), "SET");
        assert_eq!(command_tag("-- note\nbegin", 0), "BEGIN");
        assert_eq!(command_tag("start transaction", 0), "BEGIN");
        assert_eq!(command_tag("end", 0), "COMMIT");
        assert_eq!(command_tag("grant all on t to bob", 0), "GRANT");
        assert_eq!(command_tag("(values (1))", 0), "OK");
    }
}
