//! The one list of scalar builtin functions and the argument counts each accepts.
//!
//! A call is checked against [`BUILTINS`] before anything reads its arguments: when the
//! expression is compiled ([`crate::expr::Compiler`]) and again when it is evaluated
//! ([`crate::expr::call`]), so no implementation can index past the arguments it was given.
//! A call that matches no signature is 42883 (`function repeat(string) does not exist`) with
//! a hint listing the accepted signatures, as in PostgreSQL. The implementations live in
//! `expr::call`; a function missing from this list cannot be called.

use crate::error::{SqlError, SqlResult, code};

/// One accepted argument list: the parameter types (as shown in hints); when `variadic`,
/// the last one repeats (at least once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    pub params: &'static [&'static str],
    pub variadic: bool,
}

impl Signature {
    /// Whether `n` arguments fit this signature.
    pub fn accepts(&self, n: usize) -> bool {
        if self.variadic {
            n >= self.params.len()
        } else {
            n == self.params.len()
        }
    }

    fn render(&self, name: &str) -> String {
        format!(
            "{name}({}{})",
            self.params.join(", "),
            if self.variadic { ", ..." } else { "" }
        )
    }
}

/// A scalar builtin function (canonical name, lowercase) and its signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    pub name: &'static str,
    pub signatures: &'static [Signature],
}

impl Builtin {
    /// Whether `n` arguments fit one of the signatures.
    pub fn accepts(&self, n: usize) -> bool {
        self.signatures.iter().any(|s| s.accepts(n))
    }

    /// The accepted signatures, for hints.
    pub fn signatures_text(&self) -> String {
        self.signatures
            .iter()
            .map(|s| s.render(self.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

const fn exact(params: &'static [&'static str]) -> Signature {
    Signature {
        params,
        variadic: false,
    }
}

const fn variadic(params: &'static [&'static str]) -> Signature {
    Signature {
        params,
        variadic: true,
    }
}

const fn f(name: &'static str, signatures: &'static [Signature]) -> Builtin {
    Builtin { name, signatures }
}

const NONE: &[Signature] = &[exact(&[])];
const OID: &[Signature] = &[exact(&["int"])];
const TEXT: &[Signature] = &[exact(&["string"])];
const TEXT_OR_BYTES: &[Signature] = &[exact(&["string"]), exact(&["bytes"])];
const NUMBER: &[Signature] = &[exact(&["number"])];
const FLOAT: &[Signature] = &[exact(&["float"])];
const TRIM: &[Signature] = &[exact(&["string"]), exact(&["string", "string"])];
const ROUND: &[Signature] = &[exact(&["number"]), exact(&["number", "int"])];
const TEXT_TEXT: &[Signature] = &[exact(&["string", "string"])];
const TEXT_INT: &[Signature] = &[exact(&["string", "int"])];
const PAD: &[Signature] = &[
    exact(&["string", "int"]),
    exact(&["string", "int", "string"]),
];
const PRIVILEGE: &[Signature] = &[
    exact(&["string", "string"]),
    exact(&["string", "string", "string"]),
];

/// Every scalar builtin. Names are canonical: [`ALIASES`] maps the other spellings here.
pub const BUILTINS: &[Builtin] = &[
    // Session and time.
    f("now", NONE),
    f("current_date", NONE),
    f("localtimestamp", NONE),
    f("clock_timestamp", NONE),
    f("gen_random_uuid", NONE),
    f("unique_rowid", NONE),
    f("version", NONE),
    f("current_database", NONE),
    f("current_schema", NONE),
    f("current_user", NONE),
    f("random", NONE),
    f("pi", NONE),
    f("pg_backend_pid", NONE),
    f("pg_my_temp_schema", NONE),
    f("pg_is_in_recovery", NONE),
    f(
        "current_setting",
        &[exact(&["string"]), exact(&["string", "bool"])],
    ),
    // Strings.
    f("lower", TEXT),
    f("upper", TEXT),
    f("length", TEXT_OR_BYTES),
    f("octet_length", TEXT_OR_BYTES),
    f("reverse", TEXT),
    f("md5", TEXT),
    f("quote_ident", TEXT),
    f("btrim", TRIM),
    f("ltrim", TRIM),
    f("rtrim", TRIM),
    f(
        "substr",
        &[exact(&["string", "int"]), exact(&["string", "int", "int"])],
    ),
    f("left", TEXT_INT),
    f("right", TEXT_INT),
    f("repeat", TEXT_INT),
    f("strpos", TEXT_TEXT),
    f("starts_with", TEXT_TEXT),
    f("replace", &[exact(&["string", "string", "string"])]),
    f("split_part", &[exact(&["string", "string", "int"])]),
    f("translate", &[exact(&["string", "string", "string"])]),
    f("lpad", PAD),
    f("rpad", PAD),
    f("concat", &[variadic(&["any"])]),
    f("concat_ws", &[variadic(&["string", "any"])]),
    // Numbers.
    f("abs", NUMBER),
    f("sign", NUMBER),
    f("ceil", NUMBER),
    f("floor", NUMBER),
    f("round", ROUND),
    f("trunc", ROUND),
    f("mod", &[exact(&["number", "number"])]),
    f("sqrt", FLOAT),
    f("exp", FLOAT),
    f("ln", FLOAT),
    f("log", &[exact(&["number"]), exact(&["number", "number"])]),
    f("power", &[exact(&["float", "float"])]),
    // Comparison and NULL handling.
    f("coalesce", &[variadic(&["any"])]),
    f("greatest", &[variadic(&["any"])]),
    f("least", &[variadic(&["any"])]),
    f("nullif", &[exact(&["any", "any"])]),
    // Dates and times.
    f("date_part", &[exact(&["string", "timestamptz"])]),
    f("date_trunc", &[exact(&["string", "timestamptz"])]),
    f(
        "age",
        &[
            exact(&["timestamptz"]),
            exact(&["timestamptz", "timestamptz"]),
        ],
    ),
    // JSON.
    f("to_jsonb", &[exact(&["any"])]),
    f("to_json", &[exact(&["any"])]),
    f("json_build_object", &[exact(&[]), variadic(&["any"])]),
    f("jsonb_build_object", &[exact(&[]), variadic(&["any"])]),
    // Catalog functions clients (psql, drivers) call.
    f("format_type", &[exact(&["int", "int"])]),
    f("pg_table_is_visible", OID),
    f("pg_get_userbyid", OID),
    f("pg_encoding_to_char", OID),
    f("pg_relation_is_publishable", OID),
    f(
        "obj_description",
        &[exact(&["int"]), exact(&["int", "string"])],
    ),
    f("col_description", &[exact(&["int", "int"])]),
    f(
        "pg_get_expr",
        &[exact(&["string", "int"]), exact(&["string", "int", "bool"])],
    ),
    f(
        "pg_get_indexdef",
        &[exact(&["int"]), exact(&["int", "int", "bool"])],
    ),
    f(
        "pg_get_constraintdef",
        &[exact(&["int"]), exact(&["int", "bool"])],
    ),
    f(
        "pg_get_viewdef",
        &[exact(&["int"]), exact(&["int", "bool"])],
    ),
    f("has_table_privilege", PRIVILEGE),
    f("has_database_privilege", PRIVILEGE),
    f("has_schema_privilege", PRIVILEGE),
    f(
        "array_to_string",
        &[
            exact(&["string", "string"]),
            exact(&["string", "string", "string"]),
        ],
    ),
    // Internal: `x = ANY(array)` over an array's text form.
    f("any_eq", &[exact(&["any", "string"])]),
];

/// Other spellings of builtins: (alias, canonical name).
pub const ALIASES: &[(&str, &str)] = &[
    ("current_timestamp", "now"),
    ("transaction_timestamp", "now"),
    ("statement_timestamp", "now"),
    ("ceiling", "ceil"),
    ("pow", "power"),
    ("char_length", "length"),
    ("character_length", "length"),
    ("substring", "substr"),
    ("ifnull", "coalesce"),
    ("uuid_generate_v4", "gen_random_uuid"),
    ("trim", "btrim"),
];

/// The canonical name of `name` (itself unless it is an alias).
pub fn canonical(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, target)| target)
}

/// The builtin called `name` (canonical), if there is one.
pub fn lookup(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Checks a call of `name` with arguments of the given types (`None`: unknown or NULL)
/// against [`BUILTINS`]: 42883 when there is no such function or no signature takes that
/// many arguments.
pub fn check_call(name: &str, arg_types: &[Option<String>]) -> SqlResult<&'static Builtin> {
    let shown = || {
        let types: Vec<&str> = arg_types
            .iter()
            .map(|t| t.as_deref().unwrap_or("unknown"))
            .collect();
        format!("function {name}({}) does not exist", types.join(", "))
    };
    let Some(builtin) = lookup(name) else {
        return Err(SqlError::new(code::UNDEFINED_FUNCTION, shown()).with_hint(
            "no function matches the given name; see the SQL reference for the supported functions",
        ));
    };
    if !builtin.accepts(arg_types.len()) {
        return Err(
            SqlError::new(code::UNDEFINED_FUNCTION, shown()).with_hint(format!(
                "no {name} takes {} argument{}; accepted: {}",
                arg_types.len(),
                if arg_types.len() == 1 { "" } else { "s" },
                builtin.signatures_text()
            )),
        );
    }
    Ok(builtin)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the table is well formed: names unique and lowercase, every alias points at a
    // builtin and shadows none, every builtin has a signature.
    #[test]
    fn table_is_consistent() {
        let mut names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate builtin");
        for b in BUILTINS {
            assert_eq!(b.name, b.name.to_lowercase());
            assert!(!b.signatures.is_empty(), "{} has no signature", b.name);
        }
        for (alias, target) in ALIASES {
            assert!(lookup(target).is_some(), "{alias} -> {target}");
            assert!(lookup(alias).is_none(), "{alias} shadows a builtin");
        }
    }

    // Goal (issue 14 item 6): a call with the wrong number of arguments is 42883 with
    // PostgreSQL's message and a hint listing the signatures; a right one passes.
    #[test]
    fn arity_errors() {
        let s = Some("string".to_string());
        let e = check_call("repeat", std::slice::from_ref(&s)).expect_err("one argument");
        assert_eq!(e.code, code::UNDEFINED_FUNCTION);
        assert_eq!(e.message, "function repeat(string) does not exist");
        assert_eq!(
            e.hint.as_deref(),
            Some("no repeat takes 1 argument; accepted: repeat(string, int)")
        );
        assert!(check_call("repeat", &[s.clone(), Some("int".into())]).is_ok());
        let e = check_call("concat", &[]).expect_err("no arguments");
        assert_eq!(e.message, "function concat() does not exist");
        assert!(check_call("concat", &[s.clone(), None, s]).is_ok());
        let e = check_call("nosuch", &[None]).expect_err("unknown");
        assert_eq!(e.message, "function nosuch(unknown) does not exist");
    }
}
