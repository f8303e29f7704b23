//! The statement parser: a small recursive-descent grammar over sqlparser's tokenizer for
//! roach's administrative statements (which sqlparser cannot represent), with sqlparser
//! itself parsing the rest (`SELECT`). Two `SELECT` shapes are roach's own and are taken
//! before sqlparser sees them: the replication-stream builtins
//! (`SELECT crdb_internal.start_replication_stream(...)` and its three siblings, exactly that
//! call and nothing more) and `SELECT ... FROM [SHOW EXPERIMENTAL_FINGERPRINTS ...]`.

use crate::error::{SqlError, SqlResult, code};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// The columns of `SHOW EXPERIMENTAL_FINGERPRINTS`, in order.
pub const FINGERPRINT_COLUMNS: [&str; 3] = ["tenant_name", "end_ts", "fingerprint"];

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
    /// `SHOW CLUSTER SETTING name FOR VIRTUAL CLUSTER tenant`: the virtual cluster's override,
    /// else the cluster's value.
    ShowVirtualClusterSetting {
        name: String,
        tenant: String,
    },
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
    /// `CREATE VIRTUAL CLUSTER [IF NOT EXISTS] name [LIKE template] FROM REPLICATION OF source
    /// ON 'uri' [WITH RETENTION [=] 'interval']`. `uri` and `retention` may be `$n`.
    CreateReplicationStream {
        name: String,
        if_not_exists: bool,
        like: Option<String>,
        source: String,
        uri: Value,
        retention: Option<Value>,
    },
    /// `ALTER VIRTUAL CLUSTER name PAUSE REPLICATION | RESUME REPLICATION | COMPLETE
    /// REPLICATION TO LATEST | COMPLETE REPLICATION TO SYSTEM TIME '<ts>'`.
    AlterReplication {
        name: String,
        action: ReplicationAction,
    },
    /// `SHOW VIRTUAL CLUSTER name WITH REPLICATION STATUS` (`name: Some`) and
    /// `SHOW VIRTUAL CLUSTERS WITH REPLICATION STATUS` (`name: None`).
    ShowReplicationStatus {
        name: Option<String>,
    },
    /// `SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER name [WITH START TIMESTAMP [=]
    /// '<ts>'] [AS OF SYSTEM TIME '<ts>']`, or the same inside
    /// `SELECT * | col, ... FROM [...] [[AS] alias] [AS OF SYSTEM TIME '<ts>']`. `as_of` is
    /// the timestamp text as [`Statement::Sql`] keeps it; `columns` are the selected columns
    /// (`None` for `*` or the bare SHOW).
    ShowFingerprints {
        name: String,
        start: Option<Value>,
        as_of: Option<String>,
        columns: Option<Vec<String>>,
    },
    /// `SELECT crdb_internal.start_replication_stream('tenant')`: the producer side of a
    /// replication stream, called by a standby on the primary's system virtual cluster.
    StartReplicationStream {
        tenant: Value,
    },
    /// `SELECT crdb_internal.replication_stream_spec(<stream_id>)`.
    ReplicationStreamSpec {
        stream_id: Value,
    },
    /// `SELECT crdb_internal.replication_stream_progress(<stream_id>, '<ts>')`.
    ReplicationStreamProgress {
        stream_id: Value,
        ts: Value,
    },
    /// `SELECT crdb_internal.complete_replication_stream(<stream_id>, true|false)`.
    CompleteReplicationStream {
        stream_id: Value,
        successful: Value,
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

/// What `ALTER VIRTUAL CLUSTER ... REPLICATION` does to a replication stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationAction {
    Pause,
    Resume,
    CompleteToLatest,
    CompleteToSystemTime(Value),
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
            Statement::CreateReplicationStream { uri, retention, .. } => {
                std::iter::once(uri).chain(retention).collect()
            }
            Statement::AlterReplication {
                action: ReplicationAction::CompleteToSystemTime(ts),
                ..
            } => vec![ts],
            Statement::ShowFingerprints { start, .. } => start.iter().collect(),
            Statement::StartReplicationStream { tenant } => vec![tenant],
            Statement::ReplicationStreamSpec { stream_id } => vec![stream_id],
            Statement::ReplicationStreamProgress { stream_id, ts } => vec![stream_id, ts],
            Statement::CompleteReplicationStream {
                stream_id,
                successful,
            } => vec![stream_id, successful],
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
            Statement::CreateVirtualCluster { .. } | Statement::CreateReplicationStream { .. } => {
                "CREATE VIRTUAL CLUSTER"
            }
            Statement::AlterVirtualClusterService { .. }
            | Statement::AlterVirtualClusterRename { .. }
            | Statement::AlterVirtualClusterSetting { .. }
            | Statement::AlterReplication { .. } => "ALTER VIRTUAL CLUSTER",
            Statement::ShowReplicationStatus { .. } => "SHOW VIRTUAL CLUSTER",
            Statement::ShowFingerprints { .. } => "SHOW EXPERIMENTAL_FINGERPRINTS",
            Statement::StartReplicationStream { .. }
            | Statement::ReplicationStreamSpec { .. }
            | Statement::ReplicationStreamProgress { .. }
            | Statement::CompleteReplicationStream { .. } => "SELECT",
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
            Some(Token::Placeholder(p)) => placeholder(&p)?,
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

    /// A literal argument: a string, a `$n` placeholder, or (when `numbers`) a number.
    fn literal(&mut self, what: &str, numbers: bool) -> SqlResult<Value> {
        let v = match self.peek() {
            Some(Token::SingleQuotedString(s)) => Value::Text(s.clone()),
            Some(Token::Number(n, _)) if numbers => Value::Text(n.clone()),
            Some(Token::Placeholder(p)) => placeholder(p)?,
            _ => return Err(self.expected(what)),
        };
        self.pos += 1;
        Ok(v)
    }

    /// An integer argument (a stream id): digits, a string or a `$n` placeholder.
    fn integer(&mut self, what: &str) -> SqlResult<Value> {
        match self.peek() {
            Some(Token::Number(n, _)) if !n.bytes().all(|b| b.is_ascii_digit()) => {
                Err(self.expected(what))
            }
            _ => self.literal(what, true),
        }
    }

    /// A boolean argument: TRUE, FALSE, a string or a `$n` placeholder.
    fn boolean(&mut self, what: &str) -> SqlResult<Value> {
        for b in ["true", "false"] {
            if self.kw(b) {
                return Ok(Value::Text(b.into()));
            }
        }
        self.literal(what, false)
    }

    /// Consumes token `t` (shown to the user as `shown`) or fails.
    fn expect_token(&mut self, t: Token, shown: &str) -> SqlResult<()> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(shown))
        }
    }

    /// A syntax error at the current token naming what was expected.
    fn expected(&self, what: &str) -> SqlError {
        SqlError::syntax(format!("syntax error {}: expected {what}", self.near()))
    }

    /// An optional `AS OF SYSTEM TIME '<ts>'`, kept as [`Statement::Sql`] keeps it.
    fn as_of_clause(&mut self) -> SqlResult<Option<String>> {
        if !self.kws(&["AS", "OF", "SYSTEM", "TIME"]) {
            return Ok(None);
        }
        let Some(t) = self.peek() else {
            return Err(self.expected("a timestamp after AS OF SYSTEM TIME"));
        };
        let ts = as_of_timestamp(t)?;
        self.pos += 1;
        Ok(Some(ts))
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
        if Self::is_kw(self.peek(), "SELECT") {
            if let Some(st) = self.replication_builtin()? {
                self.end().map_err(|e| {
                    e.with_hint("replication stream builtins are called alone: SELECT crdb_internal.<builtin>(...)")
                })?;
                return Ok(st);
            }
            if self.selects_from_fingerprints() {
                let st = self.select_fingerprints()?;
                self.end().map_err(|e| {
                    e.with_hint("only [AS] alias and AS OF SYSTEM TIME may follow [SHOW EXPERIMENTAL_FINGERPRINTS ...]")
                })?;
                return Ok(st);
            }
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
            if self.kw("FROM") {
                if !self.kws(&["REPLICATION", "OF"]) {
                    return Err(self.expected("REPLICATION OF"));
                }
                let source = self.ident("virtual cluster name")?;
                self.expect_kw("ON")?;
                let uri = self.literal("a connection URI string", false)?;
                let retention = if self.kw("WITH") {
                    self.expect_kw("RETENTION")?;
                    if self.peek() == Some(&Token::Eq) {
                        self.pos += 1;
                    }
                    Some(self.literal("a retention interval string", false)?)
                } else {
                    None
                };
                return Ok(Statement::CreateReplicationStream {
                    name,
                    if_not_exists,
                    like,
                    source,
                    uri,
                    retention,
                });
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
            if self.kw("PAUSE") {
                self.expect_kw("REPLICATION")?;
                return Ok(Statement::AlterReplication {
                    name,
                    action: ReplicationAction::Pause,
                });
            }
            if self.kw("RESUME") {
                self.expect_kw("REPLICATION")?;
                return Ok(Statement::AlterReplication {
                    name,
                    action: ReplicationAction::Resume,
                });
            }
            if self.kw("COMPLETE") {
                self.expect_kw("REPLICATION")?;
                self.expect_kw("TO")?;
                let action = if self.kw("LATEST") {
                    ReplicationAction::CompleteToLatest
                } else if self.kws(&["SYSTEM", "TIME"]) {
                    ReplicationAction::CompleteToSystemTime(self.literal("a timestamp", true)?)
                } else {
                    return Err(self.expected("LATEST or SYSTEM TIME"));
                };
                return Ok(Statement::AlterReplication { name, action });
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
                "syntax error {}: expected START SERVICE SHARED, STOP SERVICE, PAUSE REPLICATION, RESUME REPLICATION, COMPLETE REPLICATION, RENAME TO or SET CLUSTER SETTING",
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
            if self.kw("WITH") {
                self.replication_status()?;
                return Ok(Statement::ShowReplicationStatus { name: None });
            }
            return Ok(Statement::ShowVirtualClusters);
        }
        if self.virtual_cluster_kw() {
            let name = self.ident("virtual cluster name")?;
            if self.kw("WITH") {
                self.replication_status()?;
                return Ok(Statement::ShowReplicationStatus { name: Some(name) });
            }
            return Ok(Statement::ShowVirtualCluster { name });
        }
        if self.kw("EXPERIMENTAL_FINGERPRINTS") {
            return self.show_fingerprints();
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
            let name = self.dotted()?;
            if self.kws(&["FOR", "VIRTUAL", "CLUSTER"]) {
                let tenant = self.ident("a virtual cluster name")?;
                return Ok(Statement::ShowVirtualClusterSetting { name, tenant });
            }
            return Ok(Statement::ShowClusterSetting { name });
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

    /// `REPLICATION STATUS`, after `SHOW VIRTUAL CLUSTER[S] ... WITH`.
    fn replication_status(&mut self) -> SqlResult<()> {
        if self.kws(&["REPLICATION", "STATUS"]) {
            Ok(())
        } else {
            Err(self.expected("REPLICATION STATUS"))
        }
    }

    /// The rest of `SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER name [WITH START
    /// TIMESTAMP [=] '<ts>'] [AS OF SYSTEM TIME '<ts>']`.
    fn show_fingerprints(&mut self) -> SqlResult<Statement> {
        let (name, start, as_of) = self.fingerprints_source()?;
        Ok(Statement::ShowFingerprints {
            name,
            start,
            as_of,
            columns: None,
        })
    }

    /// The virtual cluster, start timestamp and AS OF SYSTEM TIME of a fingerprint SHOW.
    fn fingerprints_source(&mut self) -> SqlResult<(String, Option<Value>, Option<String>)> {
        self.expect_kw("FROM")?;
        if !self.virtual_cluster_kw() {
            return Err(self.expected("VIRTUAL CLUSTER"));
        }
        let name = self.ident("virtual cluster name")?;
        let start = if self.kw("WITH") {
            if !self.kws(&["START", "TIMESTAMP"]) {
                return Err(self.expected("START TIMESTAMP"));
            }
            if self.peek() == Some(&Token::Eq) {
                self.pos += 1;
            }
            Some(self.literal("a timestamp", true)?)
        } else {
            None
        };
        let as_of = self.as_of_clause()?;
        Ok((name, start, as_of))
    }

    /// Whether this `SELECT` reads from `[SHOW EXPERIMENTAL_FINGERPRINTS ...]`.
    fn selects_from_fingerprints(&self) -> bool {
        self.toks[self.pos..].windows(3).any(|w| {
            w[0] == Token::LBracket
                && Self::is_kw(Some(&w[1]), "SHOW")
                && Self::is_kw(Some(&w[2]), "EXPERIMENTAL_FINGERPRINTS")
        })
    }

    /// `SELECT * | col, ... FROM [SHOW EXPERIMENTAL_FINGERPRINTS ...] [[AS] alias]
    /// [AS OF SYSTEM TIME '<ts>']`. The columns must be among [`FINGERPRINT_COLUMNS`].
    fn select_fingerprints(&mut self) -> SqlResult<Statement> {
        self.expect_kw("SELECT")?;
        let columns = if self.peek() == Some(&Token::Mul) {
            self.pos += 1;
            None
        } else {
            Some(self.ident_list("* or a column name")?)
        };
        if !Self::is_kw(self.peek(), "FROM") {
            return Err(self.expected("FROM").with_hint(
                "only * or plain column names can be selected from SHOW EXPERIMENTAL_FINGERPRINTS",
            ));
        }
        if let Some(bad) = columns
            .iter()
            .flatten()
            .find(|n| !FINGERPRINT_COLUMNS.contains(&n.as_str()))
        {
            return Err(SqlError::new(
                code::UNDEFINED_COLUMN,
                format!(
                    "column {bad:?} does not exist (SHOW EXPERIMENTAL_FINGERPRINTS has {})",
                    FINGERPRINT_COLUMNS.join(", ")
                ),
            ));
        }
        self.pos += 1;
        self.expect_token(Token::LBracket, "[")?;
        self.expect_kw("SHOW")?;
        self.expect_kw("EXPERIMENTAL_FINGERPRINTS")?;
        let (name, start, inner_as_of) = self.fingerprints_source()?;
        self.expect_token(Token::RBracket, "]")?;
        // An alias, unless the AS starts AS OF SYSTEM TIME.
        if !Self::is_kw(self.toks.get(self.pos + 1), "OF") && self.kw("AS") {
            self.ident("an alias")?;
        } else if let Some(Token::Word(w)) = self.peek() {
            let reserved = w.quote_style.is_none()
                && (w.value.eq_ignore_ascii_case("AS")
                    || sqlparser::keywords::RESERVED_FOR_TABLE_ALIAS.contains(&w.keyword));
            if !reserved {
                self.pos += 1;
            }
        }
        let as_of = match (inner_as_of, self.as_of_clause()?) {
            (Some(_), Some(_)) => return Err(SqlError::syntax("AS OF SYSTEM TIME given twice")),
            (inner, outer) => inner.or(outer),
        };
        Ok(Statement::ShowFingerprints {
            name,
            start,
            as_of,
            columns,
        })
    }

    /// `SELECT crdb_internal.<replication builtin>(args)`, or `None` (nothing consumed) when
    /// the statement does not start with a call of one of those builtins.
    fn replication_builtin(&mut self) -> SqlResult<Option<Statement>> {
        let at = |i: usize| self.toks.get(self.pos + i);
        if !(Self::is_kw(at(1), "crdb_internal")
            && at(2) == Some(&Token::Period)
            && at(4) == Some(&Token::LParen))
        {
            return Ok(None);
        }
        const BUILTINS: [&str; 4] = [
            "start_replication_stream",
            "replication_stream_spec",
            "replication_stream_progress",
            "complete_replication_stream",
        ];
        let Some(builtin) = BUILTINS.into_iter().find(|b| Self::is_kw(at(3), b)) else {
            return Ok(None);
        };
        self.pos += 5;
        let st = match builtin {
            "start_replication_stream" => Statement::StartReplicationStream {
                tenant: self.literal("a virtual cluster name string", false)?,
            },
            "replication_stream_spec" => Statement::ReplicationStreamSpec {
                stream_id: self.integer("a stream id")?,
            },
            "replication_stream_progress" => {
                let stream_id = self.integer("a stream id")?;
                self.expect_token(Token::Comma, ",")?;
                Statement::ReplicationStreamProgress {
                    stream_id,
                    ts: self.literal("a timestamp", true)?,
                }
            }
            _ => {
                let stream_id = self.integer("a stream id")?;
                self.expect_token(Token::Comma, ",")?;
                Statement::CompleteReplicationStream {
                    stream_id,
                    successful: self.boolean("true or false")?,
                }
            }
        };
        self.expect_token(Token::RParen, ")")?;
        Ok(Some(st))
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
                let ts = as_of_timestamp(rest[3].1)?;
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

/// The timestamp of `AS OF SYSTEM TIME <t>` as statements keep it: a string's contents or a
/// number's digits.
fn as_of_timestamp(t: &Token) -> SqlResult<String> {
    match t {
        Token::SingleQuotedString(s) => Ok(s.clone()),
        Token::Number(n, _) => Ok(n.clone()),
        other => Err(SqlError::syntax(format!(
            "AS OF SYSTEM TIME needs a timestamp string, got {other}"
        ))),
    }
}

/// A `$n` placeholder (n >= 1).
fn placeholder(p: &str) -> SqlResult<Value> {
    p.trim_start_matches('$')
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .map(Value::Placeholder)
        .ok_or_else(|| SqlError::syntax(format!("invalid placeholder {p}")))
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

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    // Goal: CREATE VIRTUAL CLUSTER ... FROM REPLICATION OF parses in every spelling (the
    // tutorial's exact statement, TENANT, lowercase, IF NOT EXISTS, RETENTION with and without
    // `=`, placeholders), and without FROM it is still a plain CreateVirtualCluster.
    #[test]
    fn create_replication_stream() {
        assert_eq!(
            one(
                "CREATE VIRTUAL CLUSTER application LIKE template FROM REPLICATION OF application ON 'postgresql://repl:pw@127.0.0.1:26257?options=-ccluster=system&sslmode=verify-full&sslrootcert=certs/ca_primary.crt';"
            ),
            Statement::CreateReplicationStream {
                name: "application".into(),
                if_not_exists: false,
                like: Some("template".into()),
                source: "application".into(),
                uri: text(
                    "postgresql://repl:pw@127.0.0.1:26257?options=-ccluster=system&sslmode=verify-full&sslrootcert=certs/ca_primary.crt"
                ),
                retention: None,
            }
        );
        assert_eq!(
            one(
                "create tenant if not exists App FROM replication of src on $1 with retention = $2"
            ),
            Statement::CreateReplicationStream {
                name: "app".into(),
                if_not_exists: true,
                like: None,
                source: "src".into(),
                uri: Value::Placeholder(1),
                retention: Some(Value::Placeholder(2)),
            }
        );
        assert_eq!(
            one("CREATE VIRTUAL CLUSTER b FROM REPLICATION OF a ON 'pg://x' WITH RETENTION '4h'"),
            Statement::CreateReplicationStream {
                name: "b".into(),
                if_not_exists: false,
                like: None,
                source: "a".into(),
                uri: text("pg://x"),
                retention: Some(text("4h")),
            }
        );
        assert_eq!(
            one("CREATE VIRTUAL CLUSTER b FROM REPLICATION OF a ON $1 WITH RETENTION = $2")
                .parameter_count(),
            2
        );
        assert_eq!(
            one("CREATE VIRTUAL CLUSTER b FROM REPLICATION OF a ON 'u'").tag(),
            "CREATE VIRTUAL CLUSTER"
        );
        assert_eq!(
            one("create virtual cluster x like t;"),
            Statement::CreateVirtualCluster {
                name: "x".into(),
                if_not_exists: false,
                like: Some("t".into()),
            }
        );
    }

    // Goal: the four ALTER VIRTUAL CLUSTER ... REPLICATION actions parse, with TENANT,
    // lowercase, `;` and a placeholder cutover time.
    #[test]
    fn alter_replication() {
        let alter = |name: &str, action| Statement::AlterReplication {
            name: name.into(),
            action,
        };
        assert_eq!(
            one("ALTER VIRTUAL CLUSTER application PAUSE REPLICATION"),
            alter("application", ReplicationAction::Pause)
        );
        assert_eq!(
            one("alter tenant application resume replication;"),
            alter("application", ReplicationAction::Resume)
        );
        assert_eq!(
            one("ALTER VIRTUAL CLUSTER application COMPLETE REPLICATION TO LATEST"),
            alter("application", ReplicationAction::CompleteToLatest)
        );
        assert_eq!(
            one(
                "ALTER TENANT application COMPLETE REPLICATION TO SYSTEM TIME '1700000000000000000.0000000000'"
            ),
            alter(
                "application",
                ReplicationAction::CompleteToSystemTime(text("1700000000000000000.0000000000"))
            )
        );
        let st = one("alter virtual cluster a complete replication to system time $1");
        assert_eq!(
            st,
            alter(
                "a",
                ReplicationAction::CompleteToSystemTime(Value::Placeholder(1))
            )
        );
        assert_eq!(st.parameter_count(), 1);
        assert_eq!(st.tag(), "ALTER VIRTUAL CLUSTER");
    }

    // Goal: SHOW ... WITH REPLICATION STATUS parses for one and for all virtual clusters,
    // and the plain SHOW forms are unchanged.
    #[test]
    fn show_replication_status() {
        assert_eq!(
            one("SHOW VIRTUAL CLUSTER application WITH REPLICATION STATUS"),
            Statement::ShowReplicationStatus {
                name: Some("application".into())
            }
        );
        assert_eq!(
            one("show tenant application with replication status;"),
            Statement::ShowReplicationStatus {
                name: Some("application".into())
            }
        );
        assert_eq!(
            one("SHOW VIRTUAL CLUSTERS WITH REPLICATION STATUS"),
            Statement::ShowReplicationStatus { name: None }
        );
        assert_eq!(
            one("show tenants with replication status"),
            Statement::ShowReplicationStatus { name: None }
        );
        assert_eq!(
            one("SHOW VIRTUAL CLUSTER application"),
            Statement::ShowVirtualCluster {
                name: "application".into()
            }
        );
        assert_eq!(
            one("SHOW VIRTUAL CLUSTERS WITH REPLICATION STATUS").tag(),
            "SHOW VIRTUAL CLUSTER"
        );
    }

    // Goal: SHOW EXPERIMENTAL_FINGERPRINTS parses bare and wrapped in SELECT ... FROM [...],
    // including the roachtest's exact statement; AS OF SYSTEM TIME is kept exactly as
    // Statement::Sql keeps it.
    #[test]
    fn fingerprint_columns_are_checked_when_parsing() {
        // Goal: an unknown column is refused before anything runs (so Describe and Execute
        // agree), naming the columns there are.
        let e = parse(
            "SELECT fingerprint, nope FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a]",
        )
        .expect_err("unknown column");
        assert_eq!(e.code, code::UNDEFINED_COLUMN);
        assert!(
            e.message.contains("\"nope\"")
                && e.message.contains("tenant_name, end_ts, fingerprint"),
            "{e:?}"
        );
    }

    #[test]
    fn show_fingerprints() {
        assert_eq!(
            one(
                "SELECT fingerprint FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER application WITH START TIMESTAMP = '1700000000000000000.0000000000'] AS OF SYSTEM TIME '1700000001000000000.0000000000'"
            ),
            Statement::ShowFingerprints {
                name: "application".into(),
                start: Some(text("1700000000000000000.0000000000")),
                as_of: Some("1700000001000000000.0000000000".into()),
                columns: Some(vec!["fingerprint".into()]),
            }
        );
        let Statement::Sql {
            as_of: sql_as_of, ..
        } = one("SELECT 1 AS OF SYSTEM TIME '1700000001000000000.0000000000'")
        else {
            panic!("SELECT goes to sqlparser");
        };
        assert_eq!(sql_as_of.as_deref(), Some("1700000001000000000.0000000000"));
        assert_eq!(
            one("SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER application"),
            Statement::ShowFingerprints {
                name: "application".into(),
                start: None,
                as_of: None,
                columns: None,
            }
        );
        assert_eq!(
            one(
                "show experimental_fingerprints from tenant app with start timestamp = $1 as of system time '-10s';"
            ),
            Statement::ShowFingerprints {
                name: "app".into(),
                start: Some(Value::Placeholder(1)),
                as_of: Some("-10s".into()),
                columns: None,
            }
        );
        assert_eq!(
            one(
                "select * from [show experimental_fingerprints from tenant app] as fp as of system time 1700000001000000000.0000000000"
            ),
            Statement::ShowFingerprints {
                name: "app".into(),
                start: None,
                as_of: Some("1700000001000000000.0000000000".into()),
                columns: None,
            }
        );
        for sql in [
            "SELECT * FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a] fp AS OF SYSTEM TIME '10'",
            "SELECT * FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a] AS OF SYSTEM TIME '10'",
            "SELECT * FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a AS OF SYSTEM TIME '10']",
        ] {
            assert_eq!(
                one(sql),
                Statement::ShowFingerprints {
                    name: "a".into(),
                    start: None,
                    as_of: Some("10".into()),
                    columns: None,
                },
                "{sql}"
            );
        }
        let st = one(
            "SELECT tenant_name, Fingerprint FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a WITH START TIMESTAMP $2]",
        );
        assert_eq!(
            st,
            Statement::ShowFingerprints {
                name: "a".into(),
                start: Some(Value::Placeholder(2)),
                as_of: None,
                columns: Some(vec!["tenant_name".into(), "fingerprint".into()]),
            }
        );
        assert_eq!(st.parameter_count(), 2);
        assert_eq!(st.tag(), "SHOW EXPERIMENTAL_FINGERPRINTS");
    }

    // Goal: the producer-side builtins parse from exactly their call form, with numbers,
    // strings and placeholders; every other SELECT still goes to sqlparser.
    #[test]
    fn replication_builtins() {
        assert_eq!(
            one("SELECT crdb_internal.start_replication_stream('application')"),
            Statement::StartReplicationStream {
                tenant: text("application")
            }
        );
        assert_eq!(
            one("select CRDB_INTERNAL.START_REPLICATION_STREAM($1);"),
            Statement::StartReplicationStream {
                tenant: Value::Placeholder(1)
            }
        );
        assert_eq!(
            one("SELECT crdb_internal.replication_stream_spec(123)"),
            Statement::ReplicationStreamSpec {
                stream_id: text("123")
            }
        );
        assert_eq!(
            one("SELECT crdb_internal.replication_stream_spec('123')"),
            Statement::ReplicationStreamSpec {
                stream_id: text("123")
            }
        );
        assert_eq!(
            one(
                "SELECT crdb_internal.replication_stream_progress(42, '1700000000000000000.0000000000')"
            ),
            Statement::ReplicationStreamProgress {
                stream_id: text("42"),
                ts: text("1700000000000000000.0000000000"),
            }
        );
        let st = one("SELECT crdb_internal.replication_stream_progress($1, $2)");
        assert_eq!(
            st,
            Statement::ReplicationStreamProgress {
                stream_id: Value::Placeholder(1),
                ts: Value::Placeholder(2),
            }
        );
        assert_eq!(st.parameter_count(), 2);
        assert_eq!(st.tag(), "SELECT");
        assert_eq!(
            one("SELECT crdb_internal.complete_replication_stream(42, TRUE)"),
            Statement::CompleteReplicationStream {
                stream_id: text("42"),
                successful: text("true"),
            }
        );
        assert_eq!(
            one("select crdb_internal.complete_replication_stream($1, false);"),
            Statement::CompleteReplicationStream {
                stream_id: Value::Placeholder(1),
                successful: text("false"),
            }
        );
        for sql in [
            "SELECT crdb_internal.node_id()",
            "SELECT crdb_internal.start_replication_stream",
            "SELECT * FROM crdb_internal.start_replication_stream('a')",
            "SELECT 1",
            "SELECT a FROM t",
        ] {
            assert!(matches!(one(sql), Statement::Sql { .. }), "{sql}");
        }
    }

    // Goal: malformed replication statements are syntax errors that name what was expected.
    #[test]
    fn replication_errors_name_what_was_expected() {
        for (bad, expected) in [
            (
                "ALTER VIRTUAL CLUSTER a COMPLETE REPLICATION TO",
                "at end of input: expected LATEST or SYSTEM TIME",
            ),
            (
                "ALTER VIRTUAL CLUSTER a COMPLETE REPLICATION TO NOW",
                "at or near \"NOW\": expected LATEST or SYSTEM TIME",
            ),
            (
                "ALTER VIRTUAL CLUSTER a COMPLETE REPLICATION TO SYSTEM TIME",
                "expected a timestamp",
            ),
            ("ALTER TENANT a PAUSE", "expected REPLICATION"),
            ("ALTER TENANT a RESUME JOB", "expected REPLICATION"),
            ("CREATE VIRTUAL CLUSTER b FROM a", "expected REPLICATION OF"),
            (
                "CREATE VIRTUAL CLUSTER b FROM REPLICATION OF a",
                "expected ON",
            ),
            (
                "CREATE VIRTUAL CLUSTER b FROM REPLICATION OF a ON 5",
                "expected a connection URI string",
            ),
            (
                "CREATE VIRTUAL CLUSTER b FROM REPLICATION OF a ON 'u' WITH FOO",
                "expected RETENTION",
            ),
            (
                "CREATE VIRTUAL CLUSTER b FROM REPLICATION OF a ON 'u' WITH RETENTION",
                "expected a retention interval string",
            ),
            ("SHOW VIRTUAL CLUSTERS WITH", "expected REPLICATION STATUS"),
            (
                "SHOW VIRTUAL CLUSTER a WITH CAPABILITIES",
                "expected REPLICATION STATUS",
            ),
            (
                "SHOW EXPERIMENTAL_FINGERPRINTS FROM TABLE t",
                "expected VIRTUAL CLUSTER",
            ),
            (
                "SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a WITH START",
                "expected START TIMESTAMP",
            ),
            (
                "SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a AS OF SYSTEM TIME",
                "expected a timestamp after AS OF SYSTEM TIME",
            ),
            (
                "SELECT * FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a",
                "expected ]",
            ),
            (
                "SELECT count(*) FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a]",
                "expected FROM",
            ),
            (
                "SELECT * FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a AS OF SYSTEM TIME '1'] AS OF SYSTEM TIME '2'",
                "AS OF SYSTEM TIME given twice",
            ),
            (
                "SELECT * FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER a] WHERE x",
                "unexpected input",
            ),
            (
                "SELECT crdb_internal.start_replication_stream()",
                "expected a virtual cluster name string",
            ),
            (
                "SELECT crdb_internal.replication_stream_spec(1.5)",
                "expected a stream id",
            ),
            (
                "SELECT crdb_internal.replication_stream_progress(1)",
                "expected ,",
            ),
            (
                "SELECT crdb_internal.complete_replication_stream(1, maybe)",
                "expected true or false",
            ),
            (
                "SELECT crdb_internal.replication_stream_spec(1, 2)",
                "expected )",
            ),
            (
                "SELECT crdb_internal.replication_stream_spec(1) AS spec",
                "unexpected input",
            ),
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.code, crate::error::code::SYNTAX, "{bad}: {err:?}");
            assert!(
                err.message.contains(expected),
                "{bad}: {:?} lacks {expected:?}",
                err.message
            );
        }
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
