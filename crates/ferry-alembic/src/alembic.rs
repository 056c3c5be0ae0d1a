//! Reading an Alembic revision file without Python: the module-level
//! assignments of `revision`, `down_revision`, `branch_labels` and `depends_on`.
//!
//! Alembic imports the file and reads those four variables. ferry does not run
//! Python, so it reads them the way a person does: top-level statements only
//! (indented code, comments and docstrings are skipped), each value a Python
//! literal: a string, `None`, or a tuple or list of strings, written on one line
//! or several, with or without a type annotation
//! (`down_revision: Union[str, Sequence[str], None] = ("a", "b")`). Anything
//! else assigned to one of the four names (a variable, a call) is an error with
//! its line: ferry will not guess what it evaluates to.
//!
//! Pure: text in, result out. The tokenizer never panics on any input (a
//! property test below feeds it arbitrary text).

use std::fmt;

/// The four variables of one revision file, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionFile {
    /// `revision`, and the 1-based line it is assigned on.
    pub revision: Option<(String, usize)>,
    pub down_revision: Vec<String>,
    pub branch_labels: Vec<String>,
    pub depends_on: Vec<String>,
    /// Line of the `down_revision` assignment (for error messages).
    pub down_revision_line: usize,
    /// Line of the `depends_on` assignment.
    pub depends_on_line: usize,
}

/// A problem reading a revision file, at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Name(String),
    Str(String),
    /// One punctuation character: `( ) [ ] { } , : = .` and the rest.
    Op(char),
    /// End of a logical line (never inside brackets).
    Newline,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    /// The token starts a logical line at column 0 (a module-level statement).
    at_margin: bool,
}

/// Split Python source into the tokens the four assignments need. Strings are
/// decoded enough for revision ids (escapes kept literally but for `\\`, `\'`
/// and `\"`); comments and backslash continuations are dropped.
fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx =
        Lexer { chars: text.chars().collect(), i: 0, line: 1, depth: 0, line_start: true, column: 0, out: Vec::new() };
    while lx.i < lx.chars.len() {
        if lx.skip_layout() {
            continue;
        }
        let at_margin = lx.line_start && lx.column == 0 && lx.depth == 0;
        lx.line_start = false;
        lx.token(at_margin)?;
        lx.column += 1;
    }
    if lx.out.last().is_some_and(|t| t.tok != Tok::Newline) {
        lx.out.push(Token { tok: Tok::Newline, line: lx.line, at_margin: false });
    }
    Ok(lx.out)
}

/// Where `tokenize` is in the source.
struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    /// Open brackets: a newline inside them does not end the statement.
    depth: usize,
    line_start: bool,
    column: usize,
    out: Vec<Token>,
}

impl Lexer {
    /// Newlines, comments, continuations and blanks: consumed, and `true`, when one is next.
    fn skip_layout(&mut self) -> bool {
        let (chars, i) = (&self.chars, self.i);
        match chars[i] {
            '\n' => {
                if self.depth == 0 && self.out.last().is_some_and(|t: &Token| t.tok != Tok::Newline) {
                    self.out.push(Token { tok: Tok::Newline, line: self.line, at_margin: false });
                }
                self.line += 1;
                self.i += 1;
                if self.depth == 0 {
                    self.line_start = true;
                }
                self.column = 0;
            }
            '#' => {
                while self.i < self.chars.len() && self.chars[self.i] != '\n' {
                    self.i += 1;
                }
            }
            // Explicit line joining: the statement continues, not at the margin.
            '\\' if chars.get(i + 1) == Some(&'\n') => self.join_line(2),
            '\\' if chars.get(i + 1) == Some(&'\r') && chars.get(i + 2) == Some(&'\n') => self.join_line(3),
            c if c.is_whitespace() => {
                self.i += 1;
                self.column += 1;
            }
            _ => return false,
        }
        true
    }

    fn join_line(&mut self, len: usize) {
        self.i += len;
        self.line += 1;
        self.column = 1;
    }

    /// A name, a string (with its prefix) or an operator.
    fn token(&mut self, at_margin: bool) -> Result<(), ParseError> {
        let c = self.chars[self.i];
        let start_line = self.line;
        if c.is_alphabetic() || c == '_' {
            let begin = self.i;
            while self.i < self.chars.len() && (self.chars[self.i].is_alphanumeric() || self.chars[self.i] == '_') {
                self.i += 1;
            }
            let word: String = self.chars[begin..self.i].iter().collect();
            // A string prefix (r, b, u, f, rb, ...) directly before a quote.
            let is_prefix = word.len() <= 2 && word.chars().all(|p| "rRbBuUfF".contains(p));
            if is_prefix && matches!(self.chars.get(self.i), Some('"' | '\'')) {
                return self.string(word.contains(['r', 'R']), at_margin);
            }
            self.out.push(Token { tok: Tok::Name(word), line: start_line, at_margin });
        } else if c == '"' || c == '\'' {
            return self.string(false, at_margin);
        } else {
            match c {
                '(' | '[' | '{' => self.depth += 1,
                ')' | ']' | '}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
            self.out.push(Token { tok: Tok::Op(c), line: start_line, at_margin });
            self.i += 1;
        }
        Ok(())
    }

    fn string(&mut self, raw: bool, at_margin: bool) -> Result<(), ParseError> {
        let (value, next, lines) = read_string(&self.chars, self.i, raw, self.line)?;
        self.out.push(Token { tok: Tok::Str(value), line: self.line, at_margin });
        self.i = next;
        self.line += lines;
        Ok(())
    }
}

/// A string literal starting at `chars[start]` (the quote). Returns its value,
/// the index after it, and how many newlines it spans.
fn read_string(chars: &[char], start: usize, raw: bool, line: usize) -> Result<(String, usize, usize), ParseError> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = if triple { start + 3 } else { start + 1 };
    let mut value = String::new();
    let mut lines = 0;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(ParseError { line, message: "unterminated string".into() });
        };
        if c == '\\' && !raw {
            match chars.get(i + 1) {
                Some(&e @ ('\\' | '\'' | '"')) => value.push(e),
                Some('\n') => lines += 1,
                Some(&other) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return Err(ParseError { line, message: "unterminated string".into() }),
            }
            i += 2;
            continue;
        }
        if c == '\\' && raw {
            // In a raw string a backslash still keeps the next quote inside.
            value.push(c);
            if let Some(&n) = chars.get(i + 1) {
                if n == '\n' {
                    lines += 1;
                }
                value.push(n);
            }
            i += 2;
            continue;
        }
        if c == quote {
            if !triple {
                return Ok((value, i + 1, lines));
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return Ok((value, i + 3, lines));
            }
        }
        if c == '\n' {
            if !triple {
                return Err(ParseError {
                    line,
                    message: "unterminated string (a newline before the closing quote)".into(),
                });
            }
            lines += 1;
        }
        value.push(c);
        i += 1;
    }
}

const KEYS: [&str; 4] = ["revision", "down_revision", "branch_labels", "depends_on"];

/// Read the four variables from the text of a revision file.
pub fn parse(text: &str) -> Result<RevisionFile, ParseError> {
    let tokens = tokenize(text)?;
    let mut file = RevisionFile::default();
    let mut i = 0;
    while i < tokens.len() {
        // One logical line: tokens[i..end].
        let end = tokens[i..].iter().position(|t| t.tok == Tok::Newline).map_or(tokens.len(), |p| i + p);
        let stmt = &tokens[i..end];
        i = end + 1;
        let Some(first) = stmt.first() else { continue };
        let Tok::Name(name) = &first.tok else { continue };
        if !first.at_margin || !KEYS.contains(&name.as_str()) {
            continue;
        }
        // `name = value` or `name: annotation = value`; `name == x` or
        // `name.attr = x` are not assignments of the variable.
        let eq = match stmt.get(1).map(|t| &t.tok) {
            Some(Tok::Op('=')) if stmt.get(2).map(|t| &t.tok) != Some(&Tok::Op('=')) => 1,
            Some(Tok::Op(':')) => {
                let mut depth = 0usize;
                let mut found = None;
                for (k, t) in stmt.iter().enumerate().skip(2) {
                    match t.tok {
                        Tok::Op('(' | '[' | '{') => depth += 1,
                        Tok::Op(')' | ']' | '}') => depth = depth.saturating_sub(1),
                        Tok::Op('=') if depth == 0 => {
                            found = Some(k);
                            break;
                        }
                        _ => {}
                    }
                }
                match found {
                    Some(k) => k,
                    // A bare annotation (`revision: str`) assigns nothing.
                    None => continue,
                }
            }
            _ => continue,
        };
        let line = first.line;
        let value = literal(&stmt[eq + 1..], name, line)?;
        match name.as_str() {
            "revision" => match value {
                Value::Strings(v, true) if v.len() == 1 => {
                    file.revision = v.into_iter().next().map(|r| (r, line));
                }
                Value::Strings(..) | Value::None => {
                    return Err(ParseError { line, message: "`revision` must be a string".into() });
                }
            },
            "down_revision" => {
                file.down_revision = value.into_list();
                file.down_revision_line = line;
            }
            "branch_labels" => file.branch_labels = value.into_list(),
            _ => {
                file.depends_on = value.into_list();
                file.depends_on_line = line;
            }
        }
    }
    for id in file.revision.iter().map(|(r, _)| r).chain(&file.down_revision).chain(&file.depends_on) {
        if id.trim().is_empty() || id.chars().any(char::is_whitespace) {
            let line = file.revision.as_ref().map_or(1, |r| r.1);
            return Err(ParseError { line, message: format!("{id:?} is not a usable revision identifier") });
        }
    }
    Ok(file)
}

enum Value {
    None,
    /// The strings, and whether the literal was a single string (not a tuple).
    Strings(Vec<String>, bool),
}

impl Value {
    fn into_list(self) -> Vec<String> {
        match self {
            Value::None => Vec::new(),
            Value::Strings(v, _) => v,
        }
    }
}

/// The value of an assignment: a string, `None`, or a tuple/list of strings
/// (parentheses around a single string are just grouping, as in Python).
fn literal(tokens: &[Token], name: &str, line: usize) -> Result<Value, ParseError> {
    let bad = || ParseError {
        line,
        message: format!(
            "`{name}` is not a literal ferry can read: expected a string, None, or a tuple or list of strings"
        ),
    };
    let toks: Vec<&Tok> = tokens.iter().map(|t| &t.tok).collect();
    match toks.as_slice() {
        [Tok::Name(n)] if n == "None" => Ok(Value::None),
        [Tok::Str(s)] => Ok(Value::Strings(vec![s.clone()], true)),
        [Tok::Op(open @ ('(' | '[')), inner @ .., Tok::Op(close)] if matching(*open, *close) => {
            let mut items = Vec::new();
            let mut expect_item = true;
            let mut trailing_comma = false;
            for t in inner {
                match (t, expect_item) {
                    (Tok::Str(s), true) => {
                        items.push(s.clone());
                        expect_item = false;
                        trailing_comma = false;
                    }
                    (Tok::Op(','), false) => {
                        expect_item = true;
                        trailing_comma = true;
                    }
                    _ => return Err(bad()),
                }
            }
            if expect_item && !items.is_empty() && !trailing_comma {
                return Err(bad());
            }
            // `("a")` is the string "a"; `("a",)` and `["a"]` are sequences.
            let single = *open == '(' && items.len() == 1 && !trailing_comma;
            Ok(Value::Strings(items, single))
        }
        // Tuple without parentheses: `down_revision = "a", "b"`.
        [Tok::Str(_), Tok::Op(','), ..] => {
            let mut items = Vec::new();
            for (k, t) in toks.iter().enumerate() {
                match (k % 2, t) {
                    (0, Tok::Str(s)) => items.push(s.clone()),
                    (1, Tok::Op(',')) => {}
                    _ => return Err(bad()),
                }
            }
            Ok(Value::Strings(items, false))
        }
        _ => Err(bad()),
    }
}

fn matching(open: char, close: char) -> bool {
    matches!((open, close), ('(', ')') | ('[', ']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_plain_style_of_older_templates() {
        let f = parse(
            "\"\"\"add email\n\nRevision ID: b2\nRevises: a1\n\"\"\"\nfrom alembic import op\n\nrevision = 'b2'\ndown_revision = 'a1'\nbranch_labels = None\ndepends_on = None\n\ndef upgrade():\n    revision = 'zzz'\n    op.add_column('t', 'c')\n",
        )
        .unwrap();
        assert_eq!(f.revision, Some(("b2".into(), 8)));
        assert_eq!(f.down_revision, ids(&["a1"]));
        assert!(f.branch_labels.is_empty() && f.depends_on.is_empty());
    }

    #[test]
    fn the_annotated_style_of_the_current_template_with_a_multi_line_tuple() {
        let f = parse(
            "from typing import Sequence, Union\n\n# revision identifiers, used by Alembic.\nrevision: str = \"c3\"\ndown_revision: Union[str, Sequence[str], None] = (\n    \"a1\",  # left\n    \"b2\",\n)\nbranch_labels: Union[str, Sequence[str], None] = ('feature',)\ndepends_on: Union[str, Sequence[str], None] = [\"x9\"]\n",
        )
        .unwrap();
        assert_eq!(f.revision, Some(("c3".into(), 4)));
        assert_eq!(f.down_revision, ids(&["a1", "b2"]));
        assert_eq!(f.down_revision_line, 5);
        assert_eq!(f.branch_labels, ids(&["feature"]));
        assert_eq!(f.depends_on, ids(&["x9"]));
        assert_eq!(f.depends_on_line, 10);
    }

    #[test]
    fn grouping_parentheses_strings_prefixes_and_continuations() {
        let f = parse("revision = (\"r1\")\ndown_revision = r'a', \\\n  u\"b\"\ndepends_on = ()\n").unwrap();
        assert_eq!(f.revision, Some(("r1".into(), 1)));
        assert_eq!(f.down_revision, ids(&["a", "b"]));
        assert!(f.depends_on.is_empty());
    }

    #[test]
    fn a_docstring_or_indented_code_mentioning_the_names_is_not_an_assignment() {
        let f = parse("'''\nrevision = 'fake'\n'''\nrevision = 'real'\nif True:\n    down_revision = 'nope'\nx = revision == 'a'\n")
            .unwrap();
        assert_eq!(f.revision, Some(("real".into(), 4)));
        assert!(f.down_revision.is_empty());
    }

    #[test]
    fn values_ferry_cannot_read_are_errors_with_their_line() {
        let e = parse("revision = 'a'\n\ndown_revision = PARENT\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("down_revision"), "{e}");
        let e = parse("revision = ('a', 'b')\n").unwrap_err();
        assert!(e.message.contains("must be a string"), "{e}");
        let e = parse("revision = 'a\ndown_revision = None\n").unwrap_err();
        assert!(e.message.contains("unterminated"), "{e}");
        let e = parse("revision = 'a b'\n").unwrap_err();
        assert!(e.message.contains("not a usable"), "{e}");
    }

    #[test]
    fn a_file_without_revision_reads_as_none() {
        assert_eq!(parse("import os\n").unwrap().revision, None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(text in "\\PC*") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_python_like_text(text in "[a-z_:=()\\[\\],'\"# \n\\\\]{0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn reads_back_what_it_is_given(
            rev in "[0-9a-f]{4,12}",
            parents in proptest::collection::vec("[0-9a-f]{4,12}", 0..4),
            annotated in proptest::bool::ANY,
            multiline in proptest::bool::ANY,
        ) {
            let sep = if multiline { ",\n    " } else { ", " };
            let list = parents.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(sep);
            let down = match parents.len() {
                0 => "None".to_string(),
                1 => format!("'{}'", parents[0]),
                _ => format!("({list},)"),
            };
            let ann = if annotated { ": Union[str, Sequence[str], None]" } else { "" };
            let text = format!("revision{} = '{rev}'\ndown_revision{ann} = {down}\n", if annotated { ": str" } else { "" });
            let f = parse(&text).unwrap();
            proptest::prop_assert_eq!(f.revision.map(|r| r.0), Some(rev));
            proptest::prop_assert_eq!(f.down_revision, parents);
        }
    }
}
