//! The policy language: a check string (`role:admin or (project_id:%(project_id)s and not
//! rule:reader)`) tokenized and parsed into a tree of checks, and the value templates and
//! comparisons the checks evaluate with, as oslo.policy does.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

/// The deepest nesting of parentheses and `not` accepted in one check string.
const MAX_NESTING: usize = 64;

/// Why a check string does not parse: what was found where it was not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `%` in a check's value other than `%(key)s` or `%%`; the value.
    #[error("unsupported '%' in {0:?} (only %(key)s and %% are allowed)")]
    Template(String),
    #[error("a quoted string is not a check")]
    QuotedString,
    /// A word that is neither `@`, `!` nor `KIND:MATCH`.
    #[error("{0:?} is not a check")]
    NotACheck(String),
    /// A check's kind that opens a quote it does not close (or escapes).
    #[error("malformed quoted literal {0}")]
    QuotedLiteral(String),
    #[error("nested deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error("unbalanced '('")]
    UnclosedParen,
    #[error("unbalanced ')'")]
    UnopenedParen,
    #[error("unexpected ')'")]
    UnexpectedParen,
    #[error("'and'/'or' without a check before it")]
    MissingOperand,
    #[error("expected a check, found the end of the rule")]
    UnexpectedEnd,
    #[error("expected 'and' or 'or' between checks")]
    MissingOperator,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    True,
    False,
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Role(Template),
    /// `resolved`: index of the named (or default) rule, set by [`Policy::resolve`].
    Rule {
        name: String,
        resolved: Option<usize>,
    },
    Generic {
        left: Left,
        right: Template,
    },
    /// An `http:`/`https:` check, kept verbatim; always false.
    External(String),
}

#[derive(Debug, Clone)]
pub(super) enum Left {
    /// Python's `str()` of the literal.
    Literal(String),
    Creds(Vec<String>),
}

#[derive(Debug, Clone)]
pub(super) enum Part {
    Text(String),
    Key(String),
}

/// A check's right side: text and `%(key)s` substitutions; never empty.
#[derive(Debug, Clone)]
pub(super) struct Template(Vec<Part>);

impl Template {
    fn parse(s: &str) -> Result<Template, ParseError> {
        let bad = || ParseError::Template(s.to_owned());
        let (mut parts, mut text, mut rest) = (Vec::new(), String::new(), s);
        while let Some(pos) = rest.find('%') {
            text.push_str(&rest[..pos]);
            rest = &rest[pos + 1..];
            if let Some(after) = rest.strip_prefix('%') {
                text.push('%');
                rest = after;
                continue;
            }
            let (key, after) = rest.strip_prefix('(').and_then(|r| r.split_once(')')).ok_or_else(bad)?;
            rest = after.strip_prefix('s').ok_or_else(bad)?;
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Key(key.to_owned()));
        }
        text.push_str(rest);
        if !text.is_empty() || parts.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template(parts))
    }

    /// Substitutes the target; `None` when a key is missing (the check is then false).
    pub(super) fn render<'a>(&'a self, target: &'a Value) -> Option<Cow<'a, str>> {
        match self.0.as_slice() {
            [Part::Text(t)] => return Some(Cow::Borrowed(t)),
            [Part::Key(k)] => {
                if let Value::String(s) = lookup_target(target, k)? {
                    return Some(Cow::Borrowed(s));
                }
            }
            _ => {}
        }
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Key(k) => write_py(lookup_target(target, k)?, &mut out).ok()?,
            }
        }
        Some(Cow::Owned(out))
    }
}

/// Python's `%` mapping lookup (a flat key), then a nested dotted path.
pub(super) fn lookup_target<'a>(target: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = target.as_object()?;
    if let Some(v) = obj.get(key) {
        return Some(v);
    }
    let (first, rest) = key.split_once('.')?;
    rest.split('.').try_fold(obj.get(first)?, |v, k| v.get(k))
}

/// Writes a scalar as Python's `str()` does; lists and objects are an error (never equal).
fn write_py<W: fmt::Write>(v: &Value, out: &mut W) -> fmt::Result {
    match v {
        Value::Null => out.write_str("None"),
        Value::Bool(b) => out.write_str(if *b { "True" } else { "False" }),
        Value::Number(n) => write!(out, "{n}"),
        Value::String(s) => out.write_str(s),
        Value::Array(_) | Value::Object(_) => Err(fmt::Error),
    }
}

/// A `fmt::Write` sink that compares against an expected string without allocating.
struct EqWriter<'a>(&'a str);

impl fmt::Write for EqWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 = self.0.strip_prefix(s).ok_or(fmt::Error)?;
        Ok(())
    }
}

pub(super) fn py_str_eq(v: &Value, expected: &str) -> bool {
    let mut w = EqWriter(expected);
    write_py(v, &mut w).is_ok() && w.0.is_empty()
}

/// oslo's `GenericCheck._find_in_dict`: a dotted path; lists match on any element.
pub(super) fn creds_match(v: &Value, path: &[String], expected: &str) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return py_str_eq(v, expected);
    };
    match v.get(first.as_str()) {
        Some(Value::Array(items)) => items.iter().any(|x| creds_match(x, rest, expected)),
        Some(x) => creds_match(x, rest, expected),
        None => false,
    }
}

pub(super) fn eq_lowercase(a: &str, b: &str) -> bool {
    a.chars().flat_map(char::to_lowercase).eq(b.chars().flat_map(char::to_lowercase))
}

enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Check(Node),
}

fn is_quoted(s: &str) -> bool {
    s.len() >= 2 && ['\'', '"'].iter().any(|&q| s.starts_with(q) && s.ends_with(q))
}

/// oslo's `_parse_tokenize`: whitespace-split words with parentheses peeled off their ends.
fn tokenize(rule: &str) -> Result<Vec<Tok>, ParseError> {
    let mut toks = Vec::new();
    for word in rule.split_whitespace() {
        let clean = word.trim_start_matches('(');
        toks.extend((clean.len()..word.len()).map(|_| Tok::LParen));
        if clean.is_empty() {
            continue;
        }
        let body = clean.trim_end_matches(')');
        toks.push(match body.to_ascii_lowercase().as_str() {
            "" => Tok::RParen, // `clean` is all ')': one here, the rest below
            "and" => Tok::And,
            "or" => Tok::Or,
            "not" => Tok::Not,
            _ if is_quoted(clean) => return Err(ParseError::QuotedString),
            _ => Tok::Check(parse_check(body)?),
        });
        toks.extend((body.len().max(1)..clean.len()).map(|_| Tok::RParen));
    }
    Ok(toks)
}

/// oslo's `_parse_check`: `@`, `!` or `KIND:MATCH`.
fn parse_check(s: &str) -> Result<Node, ParseError> {
    match s {
        "@" => return Ok(Node::True),
        "!" => return Ok(Node::False),
        _ => {}
    }
    let (kind, m) = s.split_once(':').ok_or_else(|| ParseError::NotACheck(s.to_owned()))?;
    Ok(match kind {
        "rule" => Node::Rule { name: m.to_owned(), resolved: None },
        "role" => Node::Role(Template::parse(m)?),
        "http" | "https" => Node::External(s.to_owned()),
        _ => Node::Generic { left: parse_left(kind)?, right: Template::parse(m)? },
    })
}

/// Like oslo, the left side is tried as a Python literal before a credential path.
fn parse_left(kind: &str) -> Result<Left, ParseError> {
    if matches!(kind, "True" | "False" | "None") {
        return Ok(Left::Literal(kind.to_owned()));
    }
    if let Some(q) = kind.chars().next().filter(|c| matches!(c, '\'' | '"')) {
        return match kind[1..].strip_suffix(q) {
            Some(inner) if !inner.contains([q, '\\']) => Ok(Left::Literal(inner.to_owned())),
            _ => Err(ParseError::QuotedLiteral(kind.to_owned())),
        };
    }
    if let Ok(n) = kind.parse::<i64>() {
        return Ok(Left::Literal(n.to_string()));
    }
    Ok(Left::Creds(kind.split('.').map(str::to_owned).collect()))
}

fn join(items: Vec<Node>, make: fn(Vec<Node>) -> Node) -> Node {
    match <[Node; 1]>::try_from(items) {
        Ok([single]) => single,
        Err(items) => make(items),
    }
}

/// Recursive descent with oslo's precedence: `or` < `and` < `not` < checks and groups.
struct Parser {
    toks: std::iter::Peekable<std::vec::IntoIter<Tok>>,
    nesting: usize,
}

impl Parser {
    fn or(&mut self) -> Result<Node, ParseError> {
        let mut items = vec![self.and()?];
        while self.toks.next_if(|t| matches!(t, Tok::Or)).is_some() {
            items.push(self.and()?);
        }
        Ok(join(items, Node::Or))
    }

    fn and(&mut self) -> Result<Node, ParseError> {
        let mut items = vec![self.unary()?];
        while self.toks.next_if(|t| matches!(t, Tok::And)).is_some() {
            items.push(self.unary()?);
        }
        Ok(join(items, Node::And))
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(ParseError::TooDeep);
        }
        let node = match self.toks.next() {
            Some(Tok::Check(node)) => node,
            Some(Tok::Not) => Node::Not(Box::new(self.unary()?)),
            Some(Tok::LParen) => match (self.or()?, self.toks.next()) {
                (node, Some(Tok::RParen)) => node,
                _ => return Err(ParseError::UnclosedParen),
            },
            Some(Tok::RParen) => return Err(ParseError::UnexpectedParen),
            Some(Tok::And | Tok::Or) => return Err(ParseError::MissingOperand),
            None => return Err(ParseError::UnexpectedEnd),
        };
        self.nesting -= 1;
        Ok(node)
    }
}

pub(super) fn parse_rule(text: &str) -> Result<Node, ParseError> {
    if text.is_empty() {
        return Ok(Node::True);
    }
    let mut p = Parser { toks: tokenize(text)?.into_iter().peekable(), nesting: 0 };
    let node = p.or()?;
    match p.toks.next() {
        None => Ok(node),
        Some(Tok::RParen) => Err(ParseError::UnopenedParen),
        Some(_) => Err(ParseError::MissingOperator),
    }
}
