//! SQL errors: every error a client sees has a SQLSTATE and, where it helps, a hint.

use pgwire::error::{ErrorInfo, PgWireError};

/// SQLSTATE codes used by roach.
pub mod code {
    pub const SYNTAX: &str = "42601";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const INVALID_CATALOG_NAME: &str = "3D000";
    pub const CONNECTION_REJECTED: &str = "08004";
    pub const CANNOT_CONNECT_NOW: &str = "57P03";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const OBJECT_IN_USE: &str = "55006";
    pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const INTERNAL: &str = "XX000";
    pub const SNAPSHOT_TOO_OLD: &str = "72000";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const DUPLICATE_DATABASE: &str = "42P04";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const GROUPING_ERROR: &str = "42803";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const CANNOT_COERCE: &str = "42846";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
    pub const STRING_DATA_RIGHT_TRUNCATION: &str = "22001";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const DATETIME_FIELD_OVERFLOW: &str = "22008";
    pub const INTERVAL_FIELD_OVERFLOW: &str = "22015";
    pub const INVALID_REGEX: &str = "2201B";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const IN_FAILED_TRANSACTION: &str = "25P02";
    pub const ACTIVE_SQL_TRANSACTION: &str = "25001";
    pub const NO_ACTIVE_SQL_TRANSACTION: &str = "25P01";
    pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
    pub const UNDEFINED_PARAMETER: &str = "42P02";
    pub const INVALID_SCHEMA_NAME: &str = "3F000";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// CockroachDB's code for a schema change that committed but did not complete.
    pub const COMMITTED_WITH_SCHEMA_CHANGE_FAILURE: &str = "XXA00";
}

/// An error for a SQL client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

/// The result of a SQL operation.
pub type SqlResult<T> = Result<T, SqlError>;

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        SqlError {
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn syntax(message: impl Into<String>) -> Self {
        SqlError::new(code::SYNTAX, message)
    }

    pub fn privilege(message: impl Into<String>) -> Self {
        SqlError::new(code::INSUFFICIENT_PRIVILEGE, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        SqlError::new(code::INTERNAL, message)
    }

    /// The pgwire error carrying this one (severity ERROR).
    pub fn into_pgwire(self) -> PgWireError {
        PgWireError::UserError(Box::new(self.into_info("ERROR")))
    }

    /// The pgwire error carrying this one with severity FATAL (ends the connection).
    pub fn into_pgwire_fatal(self) -> PgWireError {
        PgWireError::UserError(Box::new(self.into_info("FATAL")))
    }

    fn into_info(self, severity: &str) -> ErrorInfo {
        let mut info = ErrorInfo::new(severity.to_string(), self.code.to_string(), self.message);
        info.hint = self.hint;
        info
    }
}

impl From<kv::KvError> for SqlError {
    fn from(e: kv::KvError) -> Self {
        match e {
            kv::KvError::TxnRetry { .. } | kv::KvError::ReadWithinUncertainty { .. } => {
                SqlError::new(code::SERIALIZATION_FAILURE, e.to_string())
                    .with_hint("retry the transaction")
            }
            kv::KvError::CommandTooLarge { .. } => {
                SqlError::new(code::PROGRAM_LIMIT_EXCEEDED, e.to_string()).with_hint(
                    "split the work into smaller transactions (for example, write fewer rows per statement), or raise the cluster setting kv.raft.command.max_size",
                )
            }
            kv::KvError::EntryTooLarge { .. } => {
                SqlError::new(code::PROGRAM_LIMIT_EXCEEDED, e.to_string())
                    .with_hint("split the work into smaller batches")
            }
            kv::KvError::BelowGcThreshold { .. } => {
                SqlError::new(code::SNAPSHOT_TOO_OLD, e.to_string()).with_hint(
                    "read at a later time (AS OF SYSTEM TIME), or keep more history: raise gc.ttl (ALTER VIRTUAL CLUSTER name SET CLUSTER SETTING gc.ttl = ...)",
                )
            }
            other => SqlError::internal(other.to_string()),
        }
    }
}

impl From<tenant::TenantError> for SqlError {
    fn from(e: tenant::TenantError) -> Self {
        use tenant::TenantError as T;
        match e {
            T::Kv(kv) => kv.into(),
            T::NotFound(_) | T::IdNotFound(_) => {
                SqlError::new(code::UNDEFINED_OBJECT, e.to_string())
            }
            T::AlreadyExists(_) | T::IdInUse(_) => {
                SqlError::new(code::DUPLICATE_OBJECT, e.to_string())
            }
            T::InvalidName { .. } => SqlError::new(code::INVALID_PARAMETER_VALUE, e.to_string()),
            T::OutsideTenant { .. } | T::Corrupt(_) => SqlError::internal(e.to_string()),
        }
    }
}
