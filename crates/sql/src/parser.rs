//! The statement parser: a small recursive-descent grammar over sqlparser's tokenizer for
//! roach's administrative statements (which sqlparser cannot represent), with sqlparser
//! itself parsing the rest (`SELECT`).

use crate::error::{SqlError, SqlResult};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// A value in a statement: a literal, or a `$n` placeholder of the extended protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Placeholder(usize),
    Null,
    Default,
}

/// A parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    Empty,
    /// `BEGIN [AS OF SYSTEM TIME '<ts>']`.
    Begin {
        as_of: Option<String>,
    },
    /// `SET TRANSACTION [ISOLATION LEVEL ...] [AS OF SYSTEM TIME '<ts>']`.
    SetTransaction {
        as_of: Option<String>,
    },
    Commit,
    Rollback,
    CreateUser {
        name: String,
        if_not_exists: bool,
        password: Option<Value>,
    },
    AlterUserPassword {
        name: String,
        password: Value,
    },
    DropUser {
        names: Vec<String>,
        if_exists: bool,
    },
    ShowUsers,
    Grant {
        what: Grantable,
        to: Vec<String>,
    },
    Revoke {
        what: Grantable,
        from: Vec<String>,
    },
    ShowGrants {
        users: Vec<String>,
    },
    SetClusterSetting {
        name: String,
        value: Value,
    },
    ShowClusterSetting {
        name: String,
    },
    ShowClusterSettings,
    ShowVirtualClusters,
    ShowVirtualCluster {
        name: String,
    },
    CreateVirtualCluster {
        name: String,
        if_not_exists: bool,
        like: Option<String>,
    },
    AlterVirtualClusterService {
        name: String,
        start_shared: bool,
    },
    AlterVirtualClusterRename {
        name: String,
        to: String,
    },
    AlterVirtualClusterSetting {
        name: String,
        setting: String,
        value: Value,
    },
    DropVirtualCluster {
        name: String,
        if_exists: bool,
        immediate: bool,
    },
    ShowJobs,
    CreateDatabase {
        name: String,
        if_not_exists: bool,
    },
    ShowDatabases,
    CreateTable(Box<sqlparser::ast::CreateTable>),
    ShowTables,
    ShowColumns {
        table: String,
    },
    ShowCreateTable {
        table: String,
    },
    ShowVar {
        name: String,
    },
    SetVar {
        name: String,
        value: Value,
    },
    ShowIndexes {
        table: String,
    },
    /// A statement parsed by sqlparser: queries, DML and table DDL. `as_of` is the
    /// `AS OF SYSTEM TIME` clause (removed from the text before parsing); `upsert` marks an
    /// `UPSERT INTO` (parsed as INSERT).
    Sql {
        stmt: Box<sqlparser::ast::Statement>,
        as_of: Option<String>,
        upsert: bool,
    },
}

/// What GRANT/REVOKE hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantable {
    /// `SYSTEM <privilege>[, ...]`.
    System(Vec<String>),
    /// A role (only `admin` exists).
    Role(String),
    /// Privileges on tables or databases.
    Object {
        privileges: Vec<String>,
        database: bool,
        names: Vec<String>,
    },
}

impl Statement {
    /// How many `$n` parameters the statement takes (the highest `n` it uses).
    pub fn parameter_count(&self) -> usize {
        let values: Vec<&Value> = match self {
            Statement::CreateUser { password, .. } => password.iter().collect(),
            Statement::AlterUserPassword { password, .. } => vec![password],
            Statement::SetClusterSetting { value, .. }
            | Statement::AlterVirtualClusterSetting { value, .. }
            | Statement::SetVar { value, .. } => vec![value],
            _ => Vec::new(),
        };
        values
            .into_iter()
            .filter_map(|v| match v {
                Value::Placeholder(n) => Some(*n),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The command tag of a statement that returns no rows.
    pub fn tag(&self) -> &'static str {
        match self {
            Statement::Empty => "",
            Statement::Begin { .. } => "BEGIN",
            Statement::SetTransaction { .. } => "SET TRANSACTION",
            Statement::Commit => "COMMIT",
            Statement::Rollback => "ROLLBACK",
            Statement::CreateUser { .. } => "CREATE ROLE",
            Statement::AlterUserPassword { .. } => "ALTER ROLE",
            Statement::DropUser { .. } => "DROP ROLE",
            Statement::Grant { .. } => "GRANT",
            Statement::Revoke { .. } => "REVOKE",
            Statement::SetClusterSetting { .. } => "SET CLUSTER SETTING",
            Statement::CreateVirtualCluster { .. } => "CREATE VIRTUAL CLUSTER",
            Statement::AlterVirtualClusterService { .. }
            | Statement::AlterVirtualClusterRename { .. }
            | Statement::AlterVirtualClusterSetting { .. } => "ALTER VIRTUAL CLUSTER",
            Statement::DropVirtualCluster { .. } => "DROP VIRTUAL CLUSTER",
            Statement::CreateDatabase { .. } => "CREATE DATABASE",
            Statement::CreateTable(_) => "CREATE TABLE",
            Statement::SetVar { .. } => "SET",
            _ => "SELECT",
        }
    }
}

/// Parses one or more `;`-separated statements.
pub fn parse(sql: &str) -> SqlResult<Vec<Statement>> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|e| SqlError::syntax(format!("at or near {}: {}", e.location, e.message)))?;
    let mut out = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut pieces: Vec<Vec<Token>> = Vec::new();
    for t in tokens {
        match t {
            Token::Whitespace(_) => {}
            Token::SemiColon => pieces.push(std::mem::take(&mut current)),
            t => current.push(t),
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    // Text of each statement, for the sqlparser fallback.
    let texts: Vec<&str> = split_statements(sql);
    for (i, toks) in pieces.into_iter().enumerate() {
        if toks.is_empty() {
            continue;
        }
        let text = texts.get(i).copied().unwrap_or(sql);
        out.push(Parser { toks, pos: 0 }.statement(text)?);
    }
    if out.is_empty() {
        out.push(Statement::Empty);
    }
    Ok(out)
}

/// Splits SQL text at `;` outside quotes and comments (sqlparser's tokenizer decides).
fn split_statements(sql: &str) -> Vec<&str> {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
        return vec![sql];
    };
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, col: u64| -> usize {
        let l = (line.max(1) - 1) as usize;
        let base = line_starts.get(l).copied().unwrap_or(sql.len());
        // Columns count characters from 1.
        sql[base..]
            .char_indices()
            .nth((col.max(1) - 1) as usize)
            .map_or(sql.len(), |(i, _)| base + i)
    };
    let mut out = Vec::new();
    let mut start = 0;
    for t in tokens {
        if t.token == Token::SemiColon {
            let end = offset(t.span.start.line, t.span.start.column);
            if !sql[start..end].trim().is_empty() {
                out.push(&sql[start..end]);
            }
            start = end + 1;
        }
    }
    if start < sql.len() && !sql[start..].trim().is_empty() {
        out.push(&sql[start..]);
    }
    out
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn is_kw(t: Option<&Token>, k: &str) -> bool {
        matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k))
    }

    /// Consumes keyword `k` if it is next.
    fn kw(&mut self, k: &str) -> bool {
        if Self::is_kw(self.peek(), k) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn kws(&mut self, ks: &[&str]) -> bool {
        let save = self.pos;
        for k in ks {
            if !self.kw(k) {
                self.pos = save;
                return false;
            }
        }
        true
    }

    fn near(&self) -> String {
        match self.peek() {
            Some(t) => format!("at or near \"{t}\""),
            None => "at end of input".to_string(),
        }
    }

    fn expect_kw(&mut self, k: &str) -> SqlResult<()> {
        if self.kw(k) {
            Ok(())
        } else {
            Err(SqlError::syntax(format!(
                "syntax error {}: expected {k}",
                self.near()
            )))
        }
    }

    /// An identifier: unquoted words fold to lowercase, quoted ones keep their case.
    fn ident(&mut self, what: &str) -> SqlResult<String> {
        match self.peek().cloned() {
            Some(Token::Word(w)) => {
                self.pos += 1;
                Ok(if w.quote_style.is_some() {
                    w.value
                } else {
                    w.value.to_lowercase()
                })
            }
            Some(Token::SingleQuotedString(s)) if what == "virtual cluster name" => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(SqlError::syntax(format!(
                "syntax error {}: expected {what}",
                self.near()
            ))),
        }
    }

    fn ident_list(&mut self, what: &str) -> SqlResult<Vec<String>> {
        let mut out = vec![self.ident(what)?];
        while self.peek() == Some(&Token::Comma) {
            self.pos += 1;
            out.push(self.ident(what)?);
        }
        Ok(out)
    }

    /// A dotted name such as `kv.rangefeed.enabled`.
    fn dotted(&mut self) -> SqlResult<String> {
        let mut name = self.ident("a setting name")?;
        while self.peek() == Some(&Token::Period) {
            self.pos += 1;
            name.push('.');
            name.push_str(&self.ident("a setting name")?);
        }
        Ok(name)
    }

    fn value(&mut self) -> SqlResult<Value> {
        let v = match self.peek().cloned() {
            Some(Token::SingleQuotedString(s)) => Value::Text(s),
            Some(Token::Number(n, _)) => Value::Text(n),
            Some(Token::Placeholder(p)) => {
                let n = p
                    .trim_start_matches('$')
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| SqlError::syntax(format!("invalid placeholder {p}")))?;
                Value::Placeholder(n)
            }
            Some(Token::Word(w))
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("null") =>
            {
                Value::Null
            }
            Some(Token::Word(w))
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("default") =>
            {
                Value::Default
            }
            Some(Token::Word(w)) => Value::Text(if w.quote_style.is_some() {
                w.value
            } else {
                w.value.to_lowercase()
            }),
            _ => {
                return Err(SqlError::syntax(format!(
                    "syntax error {}: expected a value",
                    self.near()
                )));
            }
        };
        self.pos += 1;
        Ok(v)
    }

    fn end(&self) -> SqlResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(SqlError::syntax(format!(
                "syntax error {}: unexpected input",
                self.near()
            ))),
        }
    }

    fn statement(mut self, text: &str) -> SqlResult<Statement> {
        if Self::is_kw(self.peek(), "CREATE") && Self::is_kw(self.toks.get(self.pos + 1), "TABLE") {
            let mut stmts = sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, text)
                .map_err(|e| SqlError::syntax(e.to_string()))?;
            return match stmts.pop() {
                Some(sqlparser::ast::Statement::CreateTable(ct)) if stmts.is_empty() => {
                    Ok(Statement::CreateTable(Box::new(ct)))
                }
                _ => Err(SqlError::syntax("expected one CREATE TABLE statement")),
            };
        }
        let first_two = (self.peek().cloned(), self.toks.get(self.pos + 1).cloned());
        let is = |t: &Option<Token>, k: &str| Self::is_kw(t.as_ref(), k);
        let sqlparser_stmt = [
            "SELECT", "WITH", "VALUES", "INSERT", "UPSERT", "UPDATE", "DELETE", "TRUNCATE",
            "EXPLAIN", "TABLE",
        ]
        .iter()
        .any(|k| is(&first_two.0, k))
            || (is(&first_two.0, "CREATE")
                && (is(&first_two.1, "INDEX") || is(&first_two.1, "UNIQUE")))
            || (is(&first_two.0, "DROP")
                && (is(&first_two.1, "TABLE")
                    || is(&first_two.1, "INDEX")
                    || is(&first_two.1, "DATABASE")))
            || (is(&first_two.0, "ALTER") && is(&first_two.1, "TABLE"));
        let st = if sqlparser_stmt {
            return parse_with_sqlparser(text);
        } else if self.kw("BEGIN") || self.kws(&["START", "TRANSACTION"]) {
            let _ = self.kw("TRANSACTION") || self.kw("WORK");
            let as_of = self.transaction_modes()?;
            Statement::Begin { as_of }
        } else if self.kw("COMMIT") || self.kw("END") {
            let _ = self.kw("TRANSACTION") || self.kw("WORK");
            Statement::Commit
        } else if self.kw("ROLLBACK") || self.kw("ABORT") {
            let _ = self.kw("TRANSACTION") || self.kw("WORK");
            Statement::Rollback
        } else if self.kw("CREATE") {
            self.create()?
        } else if self.kw("ALTER") {
            self.alter()?
        } else if self.kw("DROP") {
            self.drop()?
        } else if self.kw("GRANT") {
            let what = self.grantable()?;
            self.expect_kw("TO")?;
            Statement::Grant {
                what,
                to: self.ident_list("a user name")?,
            }
        } else if self.kw("REVOKE") {
            let what = self.grantable()?;
            self.expect_kw("FROM")?;
            Statement::Revoke {
                what,
                from: self.ident_list("a user name")?,
            }
        } else if self.kw("SHOW") {
            self.show()?
        } else if self.kw("SET") {
            self.set()?
        } else if self.kw("USE") {
            Statement::SetVar {
                name: "database".into(),
                value: Value::Text(self.ident("a database name")?),
            }
        } else {
            return Err(SqlError::new(
                crate::error::code::FEATURE_NOT_SUPPORTED,
                format!("unsupported statement {}", self.near()),
            )
            .with_hint("this virtual cluster accepts administrative statements; tables and DML arrive with application SQL"));
        };
        self.end()?;
        Ok(st)
    }

    /// An unknown form of `kind`: a syntax error when the input just ends.
    fn unsupported(&self, kind: &str) -> SqlError {
        if self.peek().is_none() {
            return SqlError::syntax(format!(
                "syntax error at end of input: incomplete {kind} statement"
            ));
        }
        SqlError::new(
            crate::error::code::FEATURE_NOT_SUPPORTED,
            format!("unsupported {kind} statement {}", self.near()),
        )
    }

    fn virtual_cluster_kw(&mut self) -> bool {
        self.kws(&["VIRTUAL", "CLUSTER"]) || self.kw("TENANT")
    }

    fn create(&mut self) -> SqlResult<Statement> {
        if self.kw("DATABASE") {
            let if_not_exists = self.kws(&["IF", "NOT", "EXISTS"]);
            let name = self.ident("a database name")?;
            return Ok(Statement::CreateDatabase {
                name,
                if_not_exists,
            });
        }
        if self.kw("USER") || self.kw("ROLE") {
            let if_not_exists = self.kws(&["IF", "NOT", "EXISTS"]);
            let name = self.ident("a user name")?;
            let _ = self.kw("WITH");
            let mut password = None;
            loop {
                if self.kw("LOGIN") || self.kw("NOLOGIN") {
                    continue;
                }
                if self.kw("PASSWORD") {
                    password = Some(self.value()?);
                    continue;
                }
                break;
            }
            return Ok(Statement::CreateUser {
                name,
                if_not_exists,
                password,
            });
        }
        if self.virtual_cluster_kw() {
            let if_not_exists = self.kws(&["IF", "NOT", "EXISTS"]);
            let name = self.ident("virtual cluster name")?;
            let like = if self.kw("LIKE") {
                Some(self.ident("virtual cluster name")?)
            } else {
                None
            };
            if Self::is_kw(self.peek(), "FROM") {
                return Err(SqlError::new(
                    crate::error::code::FEATURE_NOT_SUPPORTED,
                    "CREATE VIRTUAL CLUSTER ... FROM REPLICATION OF is not available yet",
                )
                .with_hint("physical cluster replication arrives in a later release"));
            }
            return Ok(Statement::CreateVirtualCluster {
                name,
                if_not_exists,
                like,
            });
        }
        Err(self.unsupported("CREATE"))
    }

    fn alter(&mut self) -> SqlResult<Statement> {
        if self.kw("USER") || self.kw("ROLE") {
            let name = self.ident("a user name")?;
            let _ = self.kw("WITH");
            self.expect_kw("PASSWORD")?;
            return Ok(Statement::AlterUserPassword {
                name,
                password: self.value()?,
            });
        }
        if self.virtual_cluster_kw() {
            let name = self.ident("virtual cluster name")?;
            if self.kws(&["START", "SERVICE", "SHARED"]) {
                return Ok(Statement::AlterVirtualClusterService {
                    name,
                    start_shared: true,
                });
            }
            if self.kws(&["STOP", "SERVICE"]) {
                return Ok(Statement::AlterVirtualClusterService {
                    name,
                    start_shared: false,
                });
            }
            if self.kws(&["RENAME", "TO"]) {
                return Ok(Statement::AlterVirtualClusterRename {
                    name,
                    to: self.ident("virtual cluster name")?,
                });
            }
            if self.kws(&["SET", "CLUSTER", "SETTING"]) {
                let setting = self.dotted()?;
                if !(self.peek() == Some(&Token::Eq) || self.kw("TO")) {
                    return Err(SqlError::syntax(format!(
                        "syntax error {}: expected =",
                        self.near()
                    )));
                }
                if self.peek() == Some(&Token::Eq) {
                    self.pos += 1;
                }
                return Ok(Statement::AlterVirtualClusterSetting {
                    name,
                    setting,
                    value: self.value()?,
                });
            }
            return Err(SqlError::syntax(format!(
                "syntax error {}: expected START SERVICE SHARED, STOP SERVICE, RENAME TO or SET CLUSTER SETTING",
                self.near()
            )));
        }
        Err(self.unsupported("ALTER"))
    }

    fn drop(&mut self) -> SqlResult<Statement> {
        if self.kw("USER") || self.kw("ROLE") {
            let if_exists = self.kws(&["IF", "EXISTS"]);
            return Ok(Statement::DropUser {
                names: self.ident_list("a user name")?,
                if_exists,
            });
        }
        if self.virtual_cluster_kw() {
            let if_exists = self.kws(&["IF", "EXISTS"]);
            let name = self.ident("virtual cluster name")?;
            let immediate = self.kw("IMMEDIATE");
            return Ok(Statement::DropVirtualCluster {
                name,
                if_exists,
                immediate,
            });
        }
        Err(self.unsupported("DROP"))
    }

    /// Transaction modes after BEGIN / SET TRANSACTION: isolation (only SERIALIZABLE is
    /// offered; weaker levels are upgraded, as CockroachDB does), priority, READ WRITE, and
    /// `AS OF SYSTEM TIME '<ts>'` (returned).
    fn transaction_modes(&mut self) -> SqlResult<Option<String>> {
        let mut as_of = None;
        loop {
            if self.peek() == Some(&Token::Comma) {
                self.pos += 1;
                continue;
            }
            if self.kws(&["ISOLATION", "LEVEL"]) {
                let ok = self.kw("SERIALIZABLE")
                    || self.kws(&["REPEATABLE", "READ"])
                    || self.kws(&["READ", "COMMITTED"])
                    || self.kws(&["READ", "UNCOMMITTED"])
                    || self.kw("SNAPSHOT");
                if !ok {
                    return Err(SqlError::syntax(format!(
                        "syntax error {}: expected an isolation level",
                        self.near()
                    )));
                }
            } else if self.kw("PRIORITY") {
                let _ = self.kw("LOW") || self.kw("NORMAL") || self.kw("HIGH");
            } else if self.kws(&["READ", "WRITE"])
                || self.kws(&["READ", "ONLY"])
                || self.kws(&["NOT", "DEFERRABLE"])
                || self.kw("DEFERRABLE")
            {
                // Accepted; every transaction is serializable and read-write unless it
                // reads AS OF SYSTEM TIME.
            } else if self.kws(&["AS", "OF", "SYSTEM", "TIME"]) {
                as_of = Some(match self.value()? {
                    Value::Text(t) => t,
                    _ => return Err(SqlError::syntax("AS OF SYSTEM TIME needs a timestamp")),
                });
            } else {
                return Ok(as_of);
            }
        }
    }

    fn grantable(&mut self) -> SqlResult<Grantable> {
        if self.kw("SYSTEM") {
            let mut privs = vec![self.ident("a system privilege")?];
            while self.peek() == Some(&Token::Comma) {
                self.pos += 1;
                privs.push(self.ident("a system privilege")?);
            }
            return Ok(Grantable::System(
                privs.into_iter().map(|p| p.to_uppercase()).collect(),
            ));
        }
        // `GRANT SELECT, INSERT ON TABLE t TO u` / `GRANT ALL ON DATABASE d TO u`.
        let save = self.pos;
        let mut privileges = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Token::Word(w)) if w.quote_style.is_none() => {
                    self.pos += 1;
                    let p = w.value.to_uppercase();
                    if p == "ALL" {
                        let _ = self.kw("PRIVILEGES");
                    }
                    privileges.push(p);
                }
                _ => break,
            }
            if self.peek() == Some(&Token::Comma) {
                self.pos += 1;
                continue;
            }
            break;
        }
        if self.kw("ON") {
            let database = self.kw("DATABASE");
            if !database {
                let _ = self.kw("TABLE");
            }
            let mut names = vec![self.table_name()?];
            while self.peek() == Some(&Token::Comma) {
                self.pos += 1;
                names.push(self.table_name()?);
            }
            return Ok(Grantable::Object {
                privileges,
                database,
                names,
            });
        }
        self.pos = save;
        Ok(Grantable::Role(self.ident("a role")?))
    }

    /// A possibly qualified table name; the last part is kept.
    fn table_name(&mut self) -> SqlResult<String> {
        let mut name = self.ident("a table name")?;
        while self.peek() == Some(&Token::Period) {
            self.pos += 1;
            name = self.ident("a table name")?;
        }
        Ok(name)
    }

    fn show(&mut self) -> SqlResult<Statement> {
        if self.kws(&["VIRTUAL", "CLUSTERS"]) || self.kw("TENANTS") {
            return Ok(Statement::ShowVirtualClusters);
        }
        if self.virtual_cluster_kw() {
            let name = self.ident("virtual cluster name")?;
            return Ok(Statement::ShowVirtualCluster { name });
        }
        if self.kw("USERS") || self.kw("ROLES") {
            return Ok(Statement::ShowUsers);
        }
        if self.kw("GRANTS") {
            let users = if self.kw("FOR") {
                self.ident_list("a user name")?
            } else {
                Vec::new()
            };
            return Ok(Statement::ShowGrants { users });
        }
        if self.kws(&["CLUSTER", "SETTINGS"])
            || self.kws(&["ALL", "CLUSTER", "SETTINGS"])
            || self.kws(&["PUBLIC", "CLUSTER", "SETTINGS"])
        {
            return Ok(Statement::ShowClusterSettings);
        }
        if self.kws(&["CLUSTER", "SETTING"]) {
            return Ok(Statement::ShowClusterSetting {
                name: self.dotted()?,
            });
        }
        if self.kw("JOBS") {
            return Ok(Statement::ShowJobs);
        }
        if self.kw("DATABASES") {
            return Ok(Statement::ShowDatabases);
        }
        if self.kw("TABLES") {
            return Ok(Statement::ShowTables);
        }
        if self.kw("COLUMNS") {
            self.expect_kw("FROM")?;
            return Ok(Statement::ShowColumns {
                table: self.ident("a table name")?,
            });
        }
        if self.kws(&["CREATE", "TABLE"]) {
            return Ok(Statement::ShowCreateTable {
                table: self.ident("a table name")?,
            });
        }
        if self.kw("INDEXES") || self.kw("INDEX") || self.kw("KEYS") {
            self.expect_kw("FROM")?;
            return Ok(Statement::ShowIndexes {
                table: self.ident("a table name")?,
            });
        }
        if self.kws(&["TRANSACTION", "ISOLATION", "LEVEL"]) {
            return Ok(Statement::ShowVar {
                name: "transaction_isolation".into(),
            });
        }
        let _ = self.kw("SESSION");
        Ok(Statement::ShowVar {
            name: self.dotted()?,
        })
    }

    fn set(&mut self) -> SqlResult<Statement> {
        if self.kws(&["CLUSTER", "SETTING"]) {
            let name = self.dotted()?;
            if self.peek() == Some(&Token::Eq) {
                self.pos += 1;
            } else {
                self.expect_kw("TO")?;
            }
            return Ok(Statement::SetClusterSetting {
                name,
                value: self.value()?,
            });
        }
        if self.kw("TRANSACTION") || self.kws(&["SESSION", "CHARACTERISTICS", "AS", "TRANSACTION"])
        {
            let as_of = self.transaction_modes()?;
            return Ok(Statement::SetTransaction { as_of });
        }
        let _ = self.kw("SESSION") || self.kw("LOCAL");
        let name = self.dotted()?;
        if self.peek() == Some(&Token::Eq) {
            self.pos += 1;
        } else {
            self.expect_kw("TO")?;
        }
        let mut value = self.value()?;
        // SET x = a, b: keep the first value (search_path and friends).
        while self.peek() == Some(&Token::Comma) {
            self.pos += 1;
            let _ = self.value()?;
        }
        if let Value::Text(v) = &mut value {
            *v = v.to_string();
        }
        Ok(Statement::SetVar { name, value })
    }
}

/// Parses a statement with sqlparser after removing roach's own clauses: `AS OF SYSTEM
/// TIME '<ts>'` (kept aside) and a leading `UPSERT` (parsed as INSERT).
fn parse_with_sqlparser(text: &str) -> SqlResult<Statement> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize()
        .map_err(|e| SqlError::syntax(format!("at or near {}: {}", e.location, e.message)))?;
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut as_of = None;
    let mut upsert = false;
    let word = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    let mut i = 0;
    let mut seen_word = false;
    while i < tokens.len() {
        let t = &tokens[i];
        if !seen_word && word(t, "UPSERT") {
            out.push("INSERT".into());
            upsert = true;
            seen_word = true;
            i += 1;
            continue;
        }
        if matches!(t, Token::Word(_)) {
            seen_word = true;
        }
        if word(t, "AS") {
            // AS <ws> OF <ws> SYSTEM <ws> TIME <ws> '<ts>'
            let rest: Vec<(usize, &Token)> = tokens[i + 1..]
                .iter()
                .enumerate()
                .filter(|(_, t)| !matches!(t, Token::Whitespace(_)))
                .take(4)
                .collect();
            if rest.len() == 4
                && word(rest[0].1, "OF")
                && word(rest[1].1, "SYSTEM")
                && word(rest[2].1, "TIME")
            {
                let ts = match rest[3].1 {
                    Token::SingleQuotedString(s) => s.clone(),
                    Token::Number(n, _) => n.clone(),
                    other => {
                        return Err(SqlError::syntax(format!(
                            "AS OF SYSTEM TIME needs a timestamp string, got {other}"
                        )));
                    }
                };
                if as_of.replace(ts).is_some() {
                    return Err(SqlError::syntax("AS OF SYSTEM TIME given twice"));
                }
                i += 1 + rest[3].0 + 1;
                continue;
            }
        }
        out.push(t.to_string());
        i += 1;
    }
    let rewritten = out.concat();
    let mut stmts = sqlparser::parser::Parser::parse_sql(&dialect, &rewritten)
        .map_err(|e| SqlError::syntax(e.to_string()))?;
    match stmts.len() {
        1 => Ok(Statement::Sql {
            stmt: Box::new(stmts.remove(0)),
            as_of,
            upsert,
        }),
        _ => Err(SqlError::syntax("expected one statement")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut v = parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(v.len(), 1, "{sql}");
        v.remove(0)
    }

    // Goal: the statements of the replication tutorial parse, with TENANT as a synonym.
    #[test]
    fn tutorial_statements() {
        assert_eq!(one("SHOW VIRTUAL CLUSTERS"), Statement::ShowVirtualClusters);
        assert_eq!(one("show tenants;"), Statement::ShowVirtualClusters);
        assert_eq!(
            one("CREATE USER repl WITH PASSWORD 'x'"),
            Statement::CreateUser {
                name: "repl".into(),
                if_not_exists: false,
                password: Some(Value::Text("x".into()))
            }
        );
        assert_eq!(
            one("GRANT SYSTEM REPLICATION TO repl"),
            Statement::Grant {
                what: Grantable::System(vec!["REPLICATION".into()]),
                to: vec!["repl".into()]
            }
        );
        assert_eq!(
            one("SET CLUSTER SETTING kv.rangefeed.enabled = true"),
            Statement::SetClusterSetting {
                name: "kv.rangefeed.enabled".into(),
                value: Value::Text("true".into())
            }
        );
        assert_eq!(
            one("ALTER TENANT application START SERVICE SHARED"),
            Statement::AlterVirtualClusterService {
                name: "application".into(),
                start_shared: true
            }
        );
        assert_eq!(
            one("CREATE VIRTUAL CLUSTER IF NOT EXISTS app2 LIKE template"),
            Statement::CreateVirtualCluster {
                name: "app2".into(),
                if_not_exists: true,
                like: Some("template".into())
            }
        );
        assert_eq!(
            one("DROP VIRTUAL CLUSTER IF EXISTS app2 IMMEDIATE"),
            Statement::DropVirtualCluster {
                name: "app2".into(),
                if_exists: true,
                immediate: true
            }
        );
        assert!(matches!(one("SELECT 1"), Statement::Sql { .. }));
        assert_eq!(parse("SHOW USERS; SHOW JOBS").expect("two").len(), 2);
        assert_eq!(one("CREATE USER u WITH PASSWORD $1").parameter_count(), 1);
        assert_eq!(
            one("SET CLUSTER SETTING kv.rangefeed.enabled = $2").parameter_count(),
            2
        );
        assert_eq!(one("SHOW USERS").parameter_count(), 0);
    }

    // Goal: malformed input yields syntax errors with a location, never a panic.
    #[test]
    fn errors_are_syntax_errors() {
        for bad in [
            "CREATE",
            "GRANT SYSTEM",
            "SHOW CLUSTER SETTING",
            "ALTER VIRTUAL CLUSTER x FLY",
            "SET CLUSTER SETTING a.b",
            "'unterminated",
            "SELECT FROM WHERE",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.code, crate::error::code::SYNTAX, "{bad}: {err:?}");
        }
        assert_eq!(
            parse("FROBNICATE").expect_err("unknown").code,
            crate::error::code::FEATURE_NOT_SUPPORTED
        );
        assert_eq!(parse("  ;; ").expect("empty"), vec![Statement::Empty]);
    }
}
