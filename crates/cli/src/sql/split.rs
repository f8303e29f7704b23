//! Splitting SQL text into statements at `;`, the way the shell reads its input.
//!
//! A `;` ends a statement only outside string literals (`'...'` with `''` escapes, `E'...'` with
//! backslash escapes), quoted identifiers (`"..."` with `""` escapes), dollar-quoted strings
//! (`$$...$$`, `$tag$...$tag$`), line comments (`-- ...`) and block comments (`/* ... */`, which
//! nest as in PostgreSQL). Statements made only of whitespace and comments are dropped. The
//! lexer only needs to know where a statement ends; the server parses it.

/// What the lexer is inside of at a given point.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    /// A `'...'` literal; `escapes` for `E'...'`, where a backslash escapes the next character.
    Single {
        escapes: bool,
    },
    Double,
    LineComment,
    Block {
        depth: u32,
    },
    /// A dollar-quoted string opened by `$tag$` (the tag may be empty).
    Dollar {
        tag: String,
    },
}

/// The result of scanning a piece of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Complete statements, trimmed, without their terminating `;`.
    pub statements: Vec<String>,
    /// The text after the last complete statement, as written.
    pub rest: String,
    /// Whether `rest` holds anything besides whitespace and comments.
    pub rest_has_content: bool,
}

impl Scan {
    /// The unterminated statement at the end of the input, if it has content: at end of input
    /// a final statement without `;` still runs.
    pub fn trailing_statement(&self) -> Option<String> {
        self.rest_has_content
            .then(|| self.rest.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

/// Splits `text` into complete statements and the unterminated rest.
pub fn scan(text: &str) -> Scan {
    let b = text.as_bytes();
    let mut state = State::Normal;
    let mut statements = Vec::new();
    let mut start = 0;
    let mut content = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match &mut state {
            State::Normal => match c {
                b';' => {
                    if content {
                        statements.push(text[start..i].trim().to_string());
                    }
                    start = i + 1;
                    content = false;
                    i += 1;
                }
                b'-' if next == Some(b'-') => {
                    state = State::LineComment;
                    i += 2;
                }
                b'/' if next == Some(b'*') => {
                    state = State::Block { depth: 1 };
                    i += 2;
                }
                b'\'' => {
                    // `E'...'`: the `E` must itself start a word (not `some'`).
                    let escapes = i >= 1
                        && matches!(b[i - 1], b'e' | b'E')
                        && (i < 2 || !is_ident_byte(b[i - 2]));
                    state = State::Single { escapes };
                    content = true;
                    i += 1;
                }
                b'"' => {
                    state = State::Double;
                    content = true;
                    i += 1;
                }
                b'$' => {
                    content = true;
                    let after_ident = i >= 1 && is_ident_byte(b[i - 1]);
                    match dollar_tag(&b[i + 1..]) {
                        Some(tag) if !after_ident => {
                            i += tag.len() + 2;
                            state = State::Dollar {
                                tag: String::from_utf8_lossy(tag).into_owned(),
                            };
                        }
                        _ => i += 1,
                    }
                }
                c => {
                    if !c.is_ascii_whitespace() {
                        content = true;
                    }
                    i += 1;
                }
            },
            State::Single { escapes } => match c {
                b'\\' if *escapes => i += 2,
                b'\'' if next == Some(b'\'') => i += 2,
                b'\'' => {
                    state = State::Normal;
                    i += 1;
                }
                _ => i += 1,
            },
            State::Double => match c {
                b'"' if next == Some(b'"') => i += 2,
                b'"' => {
                    state = State::Normal;
                    i += 1;
                }
                _ => i += 1,
            },
            State::LineComment => {
                if c == b'\n' {
                    state = State::Normal;
                }
                i += 1;
            }
            State::Block { depth } => {
                if c == b'/' && next == Some(b'*') {
                    *depth += 1;
                    i += 2;
                } else if c == b'*' && next == Some(b'/') {
                    *depth -= 1;
                    if *depth == 0 {
                        state = State::Normal;
                    }
                    i += 2;
                } else {
                    i += 1;
                }
            }
            State::Dollar { tag } => {
                let close_len = tag.len() + 2;
                if c == b'$'
                    && b[i + 1..].starts_with(tag.as_bytes())
                    && b.get(i + 1 + tag.len()) == Some(&b'$')
                {
                    state = State::Normal;
                    i += close_len;
                } else {
                    i += 1;
                }
            }
        }
    }
    let rest = text.get(start..).unwrap_or("").to_string();
    Scan {
        statements,
        rest,
        rest_has_content: content,
    }
}

/// Splits a whole input (a script, `-e` text or piped stdin) into statements, including a final
/// one without `;`.
pub fn split_all(text: &str) -> Vec<String> {
    let scan = scan(text);
    let mut statements = scan.statements.clone();
    statements.extend(scan.trailing_statement());
    statements
}

/// Accumulates input lines of the interactive shell until statements are complete.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: String,
}

impl LineBuffer {
    /// Adds one input line and returns the statements it completes.
    pub fn push_line(&mut self, line: &str) -> Vec<String> {
        self.pending.push_str(line);
        self.pending.push('\n');
        let scan = scan(&self.pending);
        self.pending = if scan.rest.trim().is_empty() {
            String::new()
        } else {
            scan.rest
        };
        scan.statements
    }

    /// Whether a statement has been started but not finished.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Discards the unfinished statement (Ctrl-C).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// The first `n` words of a statement, upper-cased, skipping whitespace and comments; a word is
/// a run of letters, digits and `_`. Used to name a statement's command tag.
pub fn leading_words(statement: &str, n: usize) -> Vec<String> {
    let b = statement.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() && words.len() < n {
        if b[i..].starts_with(b"--") {
            i = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p + 1);
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0u32;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i].is_ascii_alphanumeric() || b[i] == b'_' {
            let end = b[i..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                .map_or(b.len(), |p| i + p);
            words.push(statement[i..end].to_ascii_uppercase());
            i = end;
        } else if b[i].is_ascii_whitespace() {
            i += 1;
        } else {
            break;
        }
    }
    words
}

/// The tag of a dollar quote starting right after a `$`, if `rest` is `tag$`: empty, or an
/// identifier not starting with a digit (so `$1` is a parameter, not a quote).
fn dollar_tag(rest: &[u8]) -> Option<&[u8]> {
    let end = rest.iter().position(|&c| c == b'$')?;
    let tag = &rest[..end];
    let valid = tag.first().is_none_or(|c| !c.is_ascii_digit())
        && tag
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80);
    valid.then_some(tag)
}

/// Whether a byte can be part of an identifier (so a following `$` or `'` belongs to it).
fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_statements() {
        // Goal: `;` separates statements; they come back trimmed without the `;`.
        assert_eq!(
            split_all("select 1;  select 2 ;\nselect 3;"),
            vec!["select 1", "select 2", "select 3"]
        );
    }

    #[test]
    fn several_statements_per_line_and_trailing() {
        // Goal: many statements on one line, and a final statement without `;` at end of input
        // still runs.
        assert_eq!(
            split_all("create table t (a int); insert into t values (1); select * from t"),
            vec![
                "create table t (a int)",
                "insert into t values (1)",
                "select * from t"
            ]
        );
        let s = scan("select 1; select 2");
        assert_eq!(s.statements, vec!["select 1"]);
        assert_eq!(s.trailing_statement().as_deref(), Some("select 2"));
    }

    #[test]
    fn empty_statements_dropped() {
        // Goal: empty statements, and ones made only of comments, are not sent.
        assert_eq!(split_all(";;  ; \n"), Vec::<String>::new());
        assert_eq!(
            split_all("-- just a comment\n; /* block */ ; select 1; -- trailing comment\n"),
            vec!["select 1"]
        );
        assert_eq!(split_all("-- only a comment at EOF"), Vec::<String>::new());
    }

    #[test]
    fn semicolons_in_single_quotes() {
        // Goal: `;` inside a string literal does not split, including after a `''` escape.
        assert_eq!(
            split_all("select 'a;b', 'it''s; fine'; select 2"),
            vec!["select 'a;b', 'it''s; fine'", "select 2"]
        );
        // A literal that is just an escaped quote.
        assert_eq!(
            split_all("select '''';select 1"),
            vec!["select ''''", "select 1"]
        );
    }

    #[test]
    fn escape_strings() {
        // Goal: in `E'...'` a backslash escapes the quote; in a plain literal it does not.
        assert_eq!(
            split_all(r"select E'a\';b'; select 2"),
            vec![r"select E'a\';b'", "select 2"]
        );
        assert_eq!(
            split_all(r"select 'a\'; select 2"),
            vec![r"select 'a\'", "select 2"]
        );
        // `some'...'` is not an E-string: the `e` ends an identifier.
        assert_eq!(
            split_all(r"select some'a\'; select 2"),
            vec![r"select some'a\'", "select 2"]
        );
    }

    #[test]
    fn semicolons_in_double_quotes() {
        // Goal: `;` inside a quoted identifier does not split, `""` escapes a quote.
        assert_eq!(
            split_all(r#"create table "a;""b" (x int); select 1"#),
            vec![r#"create table "a;""b" (x int)"#, "select 1"]
        );
    }

    #[test]
    fn comments() {
        // Goal: `;` in line and (nested) block comments does not split; comments stay in the
        // statement text sent to the server.
        assert_eq!(
            split_all("select 1 -- not; the end\n, 2; select /* a; /* nested; */ b; */ 3;"),
            vec![
                "select 1 -- not; the end\n, 2",
                "select /* a; /* nested; */ b; */ 3"
            ]
        );
        // `-` alone and `/` alone are operators.
        assert_eq!(
            split_all("select 3-1; select 4/2"),
            vec!["select 3-1", "select 4/2"]
        );
    }

    #[test]
    fn dollar_quotes() {
        // Goal: `$$...$$` and `$tag$...$tag$` hide `;` and quotes; an inner different tag does
        // not close the outer one; `$1` and `a$b` are not dollar quotes.
        assert_eq!(
            split_all(
                "create function f() returns int as $$ select 1; select 'x; $$ language sql; select 2"
            ),
            vec![
                "create function f() returns int as $$ select 1; select 'x; $$ language sql",
                "select 2"
            ]
        );
        assert_eq!(
            split_all("select $fn$ a; $x$ b; $x$ c; $fn$; select 3"),
            vec!["select $fn$ a; $x$ b; $x$ c; $fn$", "select 3"]
        );
        assert_eq!(
            split_all("prepare p as select $1; select a$b; select 4"),
            vec!["prepare p as select $1", "select a$b", "select 4"]
        );
    }

    #[test]
    fn unterminated_quote_is_trailing() {
        // Goal: an unterminated literal swallows the rest of the input and is sent as the final
        // statement (the server reports the error).
        let s = scan("select 1; select 'abc; select 2;");
        assert_eq!(s.statements, vec!["select 1"]);
        assert_eq!(
            s.trailing_statement().as_deref(),
            Some("select 'abc; select 2;")
        );
    }

    #[test]
    fn utf8_text() {
        // Goal: multi-byte characters next to quotes and `;` are kept intact.
        assert_eq!(
            split_all("select 'héllo;wörld'; select 'ü'"),
            vec!["select 'héllo;wörld'", "select 'ü'"]
        );
    }

    #[test]
    fn line_buffer_spans_lines() {
        // Goal: the interactive buffer keeps a statement open across lines (also inside a
        // string and a dollar quote) until its `;`, and keeps text after a `;` for the next one.
        let mut buf = LineBuffer::default();
        assert!(buf.push_line("select").is_empty());
        assert!(!buf.is_empty());
        assert!(buf.push_line("  'a;").is_empty());
        assert_eq!(
            buf.push_line("b';  select 2; select"),
            vec!["select\n  'a;\nb'", "select 2"]
        );
        assert!(!buf.is_empty());
        assert_eq!(buf.push_line("3;"), vec!["select\n3"]);
        assert!(buf.is_empty());
        assert!(buf.push_line("do $$").is_empty());
        assert!(buf.push_line("x;").is_empty());
        assert_eq!(buf.push_line("$$;"), vec!["do $$\nx;\n$$"]);
        assert!(buf.is_empty());
    }

    #[test]
    fn line_buffer_blank_lines_and_clear() {
        // Goal: blank lines do not leave the buffer non-empty (main prompt stays); clear
        // (Ctrl-C) discards an unfinished statement.
        let mut buf = LineBuffer::default();
        assert!(buf.push_line("   ").is_empty());
        assert!(buf.is_empty());
        buf.push_line("select 2");
        assert!(!buf.is_empty());
        buf.clear();
        assert!(buf.is_empty());
    }

    #[test]
    fn leading_words_skip_comments() {
        // Goal: the first words of a statement are found past comments and upper-cased.
        assert_eq!(
            leading_words("-- hi\n /* x /* y */ */ create  table t (a int)", 2),
            vec!["CREATE", "TABLE"]
        );
        assert_eq!(leading_words("insert into t", 1), vec!["INSERT"]);
        assert_eq!(leading_words("(select 1)", 2), Vec::<String>::new());
    }
}
