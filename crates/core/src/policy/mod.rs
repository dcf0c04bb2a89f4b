//! oslo.policy-compatible policy language: parsing and enforcement.
//!
//! A [`Policy`] maps rule names to check strings such as
//! `role:admin or (role:reader and project_id:%(target.project.id)s)`, parsed once into
//! an AST: [`Policy::enforce`] never parses, and allocates only to render a template that
//! mixes text and substitutions. Semantics follow oslo.policy (`_parser.py`, `_checks.py`):
//! * `@` and `""` allow, `!` denies; `not` binds tighter than `and`, `and` than `or`;
//!   keywords are case-insensitive; parentheses may hug checks: `(role:a or role:b)`.
//! * `role:NAME` matches the credential `roles` list case-insensitively.
//! * `rule:NAME` evaluates another rule; an undefined name falls back to the rule named
//!   [`DEFAULT_RULE`] if any (oslo's `Rules.__missing__`), else is false. A reference chain
//!   deeper than [`MAX_RULE_DEPTH`] (a loop) denies the whole request, even under `not`.
//! * Other `KEY:VALUE` checks are generic: VALUE's `%(key)s` parts come from the target
//!   (flat dotted key first, as Keystone passes them, then a nested path); KEY is a Python
//!   literal (`True`, `False`, `None`, `'text'`, an integer) or a dotted credential path
//!   whose lists match on any element. Both sides compare as Python's `str()` renders them
//!   (`True`, `None`); lists and objects never compare equal. VALUE is never unquoted:
//!   `name:'bob'` compares with `'bob'`, quotes included, exactly as in oslo.
//! * A missing target key or credential makes a check false, never an error.
//! * `http:`/`https:` checks parse but always deny; [`Policy::unsupported_checks`] lists them.
//!
//! Deliberate differences: where oslo logs and fails closed on a malformed check string
//! (or a YAML `null` rule, which oslo allows), this module returns a [`PolicyError`];
//! templates support only `%(key)s` and `%%`; the legacy list-of-lists rule syntax is
//! rejected as an invalid rule value.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use serde_yaml::Value as Yaml;

/// The rule used when an enforced or referenced rule is not defined.
pub const DEFAULT_RULE: &str = "default";
/// The longest chain of `rule:` references followed in one enforcement.
pub const MAX_RULE_DEPTH: usize = 50;

/// Errors from building a policy or loading its overrides.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    // `reason` stays in the message (and is not the `source`): callers print this error
    // whole, and the check string means little without it.
    #[error("rule {rule:?}: invalid check string {check:?}: {reason}")]
    InvalidRule { rule: String, check: String, reason: ParseError },
    #[error("rule {rule:?}: expected a check string, found {found}")]
    InvalidRuleValue { rule: String, found: &'static str },
    #[error("rule {rule:?} is defined twice in the defaults")]
    DuplicateDefault { rule: String },
    #[error("policy overrides are not a mapping of rule name to check string: {reason}")]
    InvalidDocument { reason: String },
    #[error("policy file {}: {source}", .path.display())]
    File { path: PathBuf, source: Box<PolicyError> },
    #[error("cannot read policy file {}: {source}", .path.display())]
    Io { path: PathBuf, source: Arc<std::io::Error> },
}

fn invalid(rule: &str, check: &str, reason: ParseError) -> PolicyError {
    PolicyError::InvalidRule { rule: rule.to_owned(), check: check.to_owned(), reason }
}

fn yaml_kind(v: &Yaml) -> &'static str {
    match v {
        Yaml::Null => "null",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a mapping",
        Yaml::Tagged(_) => "a tagged value",
    }
}

/// Returned when `rule:` references nest past [`MAX_RULE_DEPTH`].
struct TooDeep;

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    source: String,
    node: Node,
}

/// An immutable, parsed set of rules; share it behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    index: HashMap<String, usize>,
}

impl Policy {
    /// Builds a policy from `(rule name, check string)` defaults; an invalid one is an error.
    pub fn new(defaults: &[(&str, &str)]) -> Result<Policy, PolicyError> {
        let mut p = Policy { rules: Vec::with_capacity(defaults.len()), index: HashMap::new() };
        for &(name, check) in defaults {
            if p.index.contains_key(name) {
                return Err(PolicyError::DuplicateDefault { rule: name.to_owned() });
            }
            let node = parse_rule(check).map_err(|r| invalid(name, check, r))?;
            p.insert(name, check.to_owned(), node);
        }
        p.resolve();
        Ok(p)
    }

    /// A copy with the rules of `text` (policy.yaml or policy.json) replacing or adding rules.
    pub fn with_overrides(&self, text: &str) -> Result<Policy, PolicyError> {
        let doc = serde_yaml::from_str(text);
        let doc = doc.map_err(|e| PolicyError::InvalidDocument { reason: e.to_string() })?;
        let map = match doc {
            Yaml::Null => return Ok(self.clone()),
            Yaml::Mapping(map) => map,
            other => {
                let reason = format!("the document is {}", yaml_kind(&other));
                return Err(PolicyError::InvalidDocument { reason });
            }
        };
        let mut p = self.clone();
        for (key, value) in map {
            let Yaml::String(name) = key else {
                let reason = format!("a rule name is {}", yaml_kind(&key));
                return Err(PolicyError::InvalidDocument { reason });
            };
            let (source, node) = match value {
                Yaml::String(s) => {
                    let node = parse_rule(&s).map_err(|r| invalid(&name, &s, r))?;
                    (s, node)
                }
                v => return Err(PolicyError::InvalidRuleValue { rule: name, found: yaml_kind(&v) }),
            };
            p.insert(&name, source, node);
        }
        p.resolve();
        Ok(p)
    }

    fn insert(&mut self, name: &str, source: String, node: Node) {
        let rule = Rule { name: name.to_owned(), source, node };
        match self.index.get(name) {
            Some(&i) => self.rules[i] = rule,
            None => {
                self.index.insert(name.to_owned(), self.rules.len());
                self.rules.push(rule);
            }
        }
    }

    /// Points every `rule:` reference at its rule, or at the default rule when undefined.
    fn resolve(&mut self) {
        fn walk(node: &mut Node, index: &HashMap<String, usize>, default: Option<usize>) {
            match node {
                Node::Not(n) => walk(n, index, default),
                Node::And(ns) | Node::Or(ns) => ns.iter_mut().for_each(|n| walk(n, index, default)),
                Node::Rule { name, resolved } => *resolved = index.get(name).copied().or(default),
                _ => {}
            }
        }
        let default = self.index.get(DEFAULT_RULE).copied();
        self.rules.iter_mut().for_each(|r| walk(&mut r.node, &self.index, default));
    }

    /// Evaluates `rule`, or the default rule when `rule` is undefined; denies if neither is.
    /// [`Policy::enforce`] for an API target built with `json!`: null attributes are left
    /// out, as oslo.policy would otherwise compare them as the string "None".
    pub fn allows(&self, rule: &str, target: &Value, creds: &Value) -> bool {
        match target {
            Value::Object(o) => {
                let t = Value::Object(
                    o.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
                );
                self.enforce(rule, &t, creds)
            }
            other => self.enforce(rule, other, creds),
        }
    }

    pub fn enforce(&self, rule: &str, target: &Value, creds: &Value) -> bool {
        note_asked(rule);
        let idx = self.index.get(rule).or_else(|| self.index.get(DEFAULT_RULE));
        let rule = idx.and_then(|&i| self.rules.get(i));
        rule.is_some_and(|r| self.eval(&r.node, (target, creds), 0).unwrap_or(false))
    }

    fn eval(&self, node: &Node, req: (&Value, &Value), depth: usize) -> Result<bool, TooDeep> {
        let (target, creds) = req;
        // The first check that settles an `and` (false) or an `or` (true), or an error.
        let settle = |ns: &[Node], settled: bool| {
            let mut results = ns.iter().map(|n| self.eval(n, req, depth));
            results.find(|r| !matches!(r, Ok(b) if *b != settled)).unwrap_or(Ok(!settled))
        };
        Ok(match node {
            Node::True => true,
            Node::False | Node::External(_) => false,
            Node::Not(n) => !self.eval(n, req, depth)?,
            Node::And(ns) => settle(ns, false)?,
            Node::Or(ns) => settle(ns, true)?,
            Node::Rule { resolved, .. } => match resolved.and_then(|i| self.rules.get(i)) {
                None => false,
                Some(_) if depth >= MAX_RULE_DEPTH => return Err(TooDeep),
                Some(r) => self.eval(&r.node, req, depth + 1)?,
            },
            Node::Role(t) => match (t.render(target), creds.get("roles")) {
                (Some(m), Some(Value::Array(roles))) => {
                    roles.iter().filter_map(Value::as_str).any(|r| eq_lowercase(r, &m))
                }
                _ => false,
            },
            Node::Generic { left, right } => match (left, right.render(target)) {
                (_, None) => false,
                (Left::Literal(s), Some(m)) => *s == *m,
                (Left::Creds(path), Some(m)) => creds_match(creds, path, &m),
            },
        })
    }

    /// The check string of `rule` as written.
    pub fn check_str(&self, rule: &str) -> Option<String> {
        self.index.get(rule).and_then(|&i| self.rules.get(i)).map(|r| r.source.clone())
    }

    /// All rule names, defaults first, in definition order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// `(rule name, check)` for every `http:`/`https:` check; these always deny.
    pub fn unsupported_checks(&self) -> Vec<(String, String)> {
        fn walk(node: &Node, name: &str, out: &mut Vec<(String, String)>) {
            match node {
                Node::Not(n) => walk(n, name, out),
                Node::And(ns) | Node::Or(ns) => ns.iter().for_each(|n| walk(n, name, out)),
                Node::External(check) => out.push((name.to_owned(), check.clone())),
                _ => {}
            }
        }
        let mut out = Vec::new();
        self.rules.iter().for_each(|r| walk(&r.node, &r.name, &mut out));
        out
    }
}

// Which rules a request asked, for the route guard (`crate::routes`) to check that a
// handler asked the rule its route declares.
tokio::task_local! {
    static ASKED: std::cell::RefCell<Vec<String>>;
}

/// Notes that `rule` was asked, when a guard is recording ([`recording`]).
fn note_asked(rule: &str) {
    let _ = ASKED.try_with(|a| a.borrow_mut().push(rule.to_owned()));
}

/// Runs `f`, returning its output and every rule asked while it ran.
pub async fn recording<F: std::future::Future>(f: F) -> (F::Output, Vec<String>) {
    ASKED
        .scope(std::cell::RefCell::new(Vec::new()), async move {
            let out = f.await;
            (out, ASKED.with(|a| a.take()))
        })
        .await
}

mod file;
mod parse;
pub use file::PolicyFile;
pub use parse::ParseError;
use parse::{creds_match, eq_lowercase, parse_rule, Left, Node};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant, SystemTime};

    fn policy(rules: &[(&str, &str)]) -> Policy {
        Policy::new(rules).unwrap_or_else(|e| panic!("{e}"))
    }

    fn roles(names: &[&str]) -> Value {
        json!({ "roles": names })
    }

    /// One case a line: `allow|deny | check string | target JSON | creds JSON`.
    fn assert_table(table: &str) {
        let json = |s: &str| serde_json::from_str::<Value>(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let cols: Vec<&str> = line.split(" | ").collect();
            let [verdict, check, target, creds] = cols[..] else { panic!("malformed case {line:?}") };
            let got = policy(&[("r", check)]).enforce("r", &json(target), &json(creds));
            assert_eq!(got, verdict == "allow", "{line}");
        }
    }

    /// Each `name: table` becomes a `#[test] fn name` asserting the table's cases.
    macro_rules! table_tests {
        ($($name:ident: $table:literal)*) => {$(
            #[test]
            fn $name() {
                assert_table($table);
            }
        )*};
    }

    table_tests! {
        at_sign_and_empty_string_allow_and_bang_denies: r#"
            allow | @ | {} | {}
            allow |  | {} | {}
            allow | (@) | {} | {}
            deny  | ! | {} | {}
        "#
        not_binds_tighter_than_and: r#"
            allow | not role:a and role:b | {} | {"roles": ["b"]}
            deny  | not role:a and role:b | {} | {"roles": ["a", "b"]}
            allow | not not role:a | {} | {"roles": ["a"]}
        "#
        and_binds_tighter_than_or: r#"
            allow | role:a or role:b and role:c | {} | {"roles": ["a"]}
            deny  | role:a or role:b and role:c | {} | {"roles": ["b"]}
            allow | role:x or not role:a and role:b | {} | {"roles": ["b"]}
            allow | role:a and role:b or role:c and role:d or role:e | {} | {"roles": ["c", "d"]}
            deny  | role:a and role:b or role:c and role:d or role:e | {} | {"roles": ["a", "d"]}
        "#
        parentheses_override_precedence: r#"
            deny  | (role:a or role:b) and role:c | {} | {"roles": ["a"]}
            allow | (role:a or role:b) and role:c | {} | {"roles": ["b", "c"]}
            allow | not (role:a and role:b) | {} | {"roles": ["a"]}
            allow | ((role:a) or (( role:b ))) | {} | {"roles": ["b"]}
        "#
        operators_are_case_insensitive: r#"
            allow | role:a OR role:b | {} | {"roles": ["b"]}
            deny  | NoT role:a And role:b | {} | {"roles": ["a", "b"]}
        "#
        role_match_is_case_insensitive_and_needs_a_roles_list: r#"
            allow | role:Admin | {} | {"roles": ["aDMIN"]}
            allow | role:ÉDITEUR | {} | {"roles": ["éditeur"]}
            deny  | role:admin | {} | {"roles": ["member"]}
            deny  | role:admin | {} | {"roles": "admin"}
            allow | role:compute:admin | {} | {"roles": ["compute:admin"]}
            allow | role:%(r)s | {"r": "Reader"} | {"roles": ["reader"]}
        "#
        // The flat key wins over the nested path, as oslo only knows flat keys.
        generic_check_substitutes_flat_and_nested_target_keys: r#"
            allow | d:%(target.user.domain_id)s | {"target.user.domain_id": "d1"} | {"d": "d1"}
            deny  | d:%(target.user.domain_id)s | {"target.user.domain_id": "d2"} | {"d": "d1"}
            allow | d:%(target.user.domain_id)s | {"target": {"user": {"domain_id": "d1"}}} | {"d": "d1"}
            deny  | d:%(target.user.domain_id)s | {"target": {"user": {"domain_id": "d2"}}} | {"d": "d1"}
            allow | x:%(a.b)s | {"a.b": "flat", "a": {"b": "nested"}} | {"x": "flat"}
            deny  | x:%(a.b)s | {"a.b": "flat", "a": {"b": "nested"}} | {"x": "nested"}
            allow | s:%(p)s/%(n)s-100%% | {"p": "pr", "n": 7} | {"s": "pr/7-100%"}
        "#
        missing_target_key_or_credential_denies: r#"
            deny | project_id:%(project_id)s | {} | {"project_id": "p"}
            deny | project_id:%(project_id)s | {"project_id": "p"} | {}
            deny | token.is_admin_project:True | {} | {"token": "flat"}
            deny | 'x':%(a.b)s | {"a": "not-an-object"} | {}
            deny | x:%(l)s | {"l": ["a"]} | {"x": "['a']"}
            deny | role:a | [] | null
        "#
        literal_left_side_compares_with_substituted_right_side: r#"
            allow | 'member':%(role.name)s | {"role.name": "member"} | {}
            deny  | 'member':%(role.name)s | {"role.name": "admin"} | {}
            allow | "shared":%(visibility)s | {"visibility": "shared"} | {}
            allow | True:%(user.enabled)s | {"user.enabled": true} | {}
            deny  | True:%(user.enabled)s | {"user.enabled": "true"} | {}
            allow | 42:%(n)s | {"n": 42} | {}
            allow | None:%(x)s | {"x": null} | {}
        "#
        true_false_right_side_matches_python_bool_rendering: r#"
            allow | is_admin:True | {} | {"is_admin": true}
            deny  | is_admin:True | {} | {"is_admin": false}
            allow | is_admin:False | {} | {"is_admin": false}
            deny  | is_admin:true | {} | {"is_admin": true}
            allow | token.is_admin_project:True | {} | {"token": {"is_admin_project": true}}
            allow | n:5 | {} | {"n": 5}
            allow | f:2.5 | {} | {"f": 2.5}
            allow | x:None | {} | {"x": null}
        "#
        right_side_keeps_its_quotes_like_oslo: r#"
            allow | name:'bob' | {} | {"name": "'bob'"}
            deny  | name:'bob' | {} | {"name": "bob"}
            allow | name:bob | {} | {"name": "bob"}
        "#
        credential_lists_match_any_element: r#"
            allow | groups.id:g2 | {} | {"groups": [{"id": "g1"}, {"id": "g2"}]}
            deny  | groups.id:g3 | {} | {"groups": [{"id": "g1"}, {"id": "g2"}]}
            allow | tags:b | {} | {"tags": ["a", "b"]}
        "#
        system_scope_is_a_generic_credential_check: r#"
            allow | role:admin and system_scope:all | {} | {"roles": ["admin"], "system_scope": "all"}
            deny  | role:admin and system_scope:all | {} | {"roles": ["admin"]}
        "#
    }

    #[test]
    fn rule_reference_evaluates_the_named_rule() {
        let p = policy(&[("admin", "role:admin"), ("r", "rule:admin or role:x")]);
        assert!(p.enforce("r", &json!({}), &roles(&["ADMIN"])));
        assert!(!p.enforce("r", &json!({}), &roles(&["member"])));
    }

    #[test]
    fn unknown_rule_reference_falls_back_to_default_like_oslo() {
        let without = policy(&[("r", "rule:nope or role:x")]);
        assert!(!without.enforce("r", &json!({}), &roles(&["member"])));
        let with = policy(&[("r", "rule:nope"), ("default", "role:member")]);
        assert!(with.enforce("r", &json!({}), &roles(&["member"])));
    }

    #[test]
    fn rule_loops_deny_even_under_not() {
        let p = policy(&[("a", "rule:b"), ("b", "rule:a"), ("n", "not rule:n"), ("ok", "@ or rule:a")]);
        assert!(!p.enforce("a", &json!({}), &json!({})));
        assert!(!p.enforce("n", &json!({}), &json!({})));
        assert!(p.enforce("ok", &json!({}), &json!({})), "short-circuit never reaches the loop");
    }

    #[test]
    fn http_checks_parse_but_deny_and_are_reported() {
        let p = policy(&[("a", "role:x or http://h.invalid/%(x)s"), ("b", "https://h/c")]);
        assert!(!p.enforce("a", &json!({ "x": 1 }), &roles(&["y"])));
        assert!(!p.enforce("b", &json!({}), &json!({})));
        let found = p.unsupported_checks();
        let found: Vec<_> = found.iter().map(|(r, c)| (r.as_str(), c.as_str())).collect();
        assert_eq!(found, [("a", "http://h.invalid/%(x)s"), ("b", "https://h/c")]);
    }

    #[test]
    fn malformed_check_strings_are_rejected() {
        let deep = format!("{}@{}", "(".repeat(100), ")".repeat(100));
        let nots = "not ".repeat(10_000) + "@";
        let bad = ["   ", "role:a and", "or role:a", "(role:a", "role:a)", "()", "admin", "not"];
        let more = ["role:a role:b", "'quoted'", "p:%(x)d", "p:50%", "p:%(x", "'a:b", &deep, &nots];
        for check in bad.iter().chain(&more) {
            let err = Policy::new(&[("r", check)]).err();
            assert!(matches!(err, Some(PolicyError::InvalidRule { .. })), "{check:?}: {err:?}");
        }
    }

    #[test]
    fn each_malformed_check_string_says_what_is_wrong() {
        use ParseError::*;
        let cases = [
            ("role:a and", UnexpectedEnd),
            ("or role:a", MissingOperand),
            ("(role:a", UnclosedParen),
            ("role:a)", UnopenedParen),
            ("()", UnexpectedParen),
            ("admin", NotACheck("admin".into())),
            ("role:a role:b", MissingOperator),
            ("'quoted'", QuotedString),
            ("p:50%", Template("50%".into())),
            ("'a:b", QuotedLiteral("'a".into())),
        ];
        for (check, want) in cases {
            let err = Policy::new(&[("r", check)]).err();
            assert!(
                matches!(&err, Some(PolicyError::InvalidRule { reason, .. }) if *reason == want),
                "{check:?}: {err:?}"
            );
        }
        let nots = "not ".repeat(100) + "@";
        assert!(matches!(Policy::new(&[("r", &nots)]), Err(PolicyError::InvalidRule { reason: TooDeep, .. })));
        // The message is the one operators have been shown all along.
        let shown = Policy::new(&[("r", "p:50%")]).err().map(|e| e.to_string());
        assert_eq!(
            shown.as_deref(),
            Some(
                r#"rule "r": invalid check string "p:50%": unsupported '%' in "50%" (only %(key)s and %% are allowed)"#
            )
        );
    }

    #[test]
    fn invalid_default_is_an_error_naming_the_rule() {
        let err = Policy::new(&[("ok", "@"), ("broken", "role:a and")]).err();
        assert!(matches!(&err, Some(PolicyError::InvalidRule { rule, .. }) if rule == "broken"));
        let dup = Policy::new(&[("x", "@"), ("x", "!")]).err();
        assert!(matches!(dup, Some(PolicyError::DuplicateDefault { rule }) if rule == "x"));
    }

    #[test]
    fn undefined_rule_falls_back_to_default_then_denies() {
        let none = json!({});
        assert!(!policy(&[("a", "@")]).enforce("missing", &none, &none));
        assert!(policy(&[("default", "@")]).enforce("missing", &none, &none));
        assert!(!policy(&[]).enforce("missing", &none, &none));
    }

    #[test]
    fn overrides_replace_defaults_and_add_rules() {
        let (none, member) = (json!({}), roles(&["member"]));
        let base = policy(&[("get", "role:admin"), ("list", "role:reader")]);
        let yaml = "# operator overrides\n\"get\": \"role:member\"\nnew: 'rule:get'\n";
        let p = base.with_overrides(yaml).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.enforce("get", &none, &member) && p.enforce("new", &none, &member));
        assert!(!p.enforce("get", &none, &roles(&["admin"])));
        assert!(p.enforce("list", &none, &roles(&["reader"])));
        assert_eq!(p.check_str("get").as_deref(), Some("role:member"));
        assert_eq!(base.check_str("get").as_deref(), Some("role:admin"));
        assert_eq!(base.check_str("nope"), None);
        let json = base.with_overrides(r#"{"list": "!", "get": ""}"#);
        let json = json.unwrap_or_else(|e| panic!("{e}"));
        assert!(!json.enforce("list", &none, &roles(&["reader"])));
        assert!(json.enforce("get", &none, &none));
        assert_eq!(json.rule_names().collect::<Vec<_>>(), ["get", "list"]);
        let refs = policy(&[("admin", "role:admin"), ("r", "rule:admin")]);
        let refs = refs.with_overrides("admin: role:boss");
        assert!(refs.is_ok_and(|p| p.enforce("r", &none, &roles(&["boss"]))), "re-resolved");
        let empty = base.with_overrides("");
        assert!(empty.is_ok_and(|p| p.check_str("get").as_deref() == Some("role:admin")));
    }

    #[test]
    fn invalid_override_is_rejected_naming_the_rule() {
        let base = policy(&[("get", "@")]);
        let err = base.with_overrides("get: '@'\nbad_rule: 'role:a or'\n").err();
        let shown = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(shown.starts_with("rule \"bad_rule\": invalid check string"), "{shown}");
        assert!(matches!(err, Some(PolicyError::InvalidRule { rule, .. }) if rule == "bad_rule"));
        for (text, name) in [("num: 3", "num"), ("nothing:", "nothing"), ("l: [[role:a]]", "l")] {
            let err = base.with_overrides(text).err();
            let named = matches!(&err, Some(PolicyError::InvalidRuleValue { rule, .. }) if rule == name);
            assert!(named, "{text:?}: {err:?}");
        }
        for text in ["- a\n- b", "{ open", "1: '@'"] {
            let err = base.with_overrides(text).err();
            assert!(matches!(err, Some(PolicyError::InvalidDocument { .. })), "{text:?}: {err:?}");
        }
    }

    /// A temp file removed on drop; each write stamps an explicit mtime, so that a change
    /// never hides inside the filesystem's mtime granularity.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> TempFile {
            let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
            let nanos = now.map_or(0, |d| d.as_nanos());
            let unique = format!("policy-{name}-{}-{nanos}.yaml", std::process::id());
            TempFile(std::env::temp_dir().join(unique))
        }

        fn write(&self, text: &str, mtime_secs: u64) {
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + mtime_secs);
            let opened =
                std::fs::write(&self.0, text).and_then(|()| std::fs::File::options().write(true).open(&self.0));
            let stamped = opened.and_then(|f| f.set_modified(mtime));
            stamped.unwrap_or_else(|e| panic!("{}: {e}", self.0.display()));
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const DEFAULTS: &[(&str, &str)] = &[("get", "role:admin")];

    fn open(file: &TempFile) -> PolicyFile {
        PolicyFile::new(&file.0, DEFAULTS).unwrap_or_else(|e| panic!("{e}"))
    }

    fn shown(pf: &PolicyFile) -> Option<String> {
        pf.current().check_str("get")
    }

    #[test]
    fn policy_file_reloads_on_mtime_change_and_keeps_last_good() {
        let file = TempFile::new("reload");
        file.write("get: role:reader\n", 0);
        let pf = open(&file).with_check_interval(Duration::ZERO);
        fn shareable<T: Send + Sync>(_: &T) {}
        shareable(&pf);
        assert_eq!(shown(&pf).as_deref(), Some("role:reader"));
        file.write("get: role:member\n", 10);
        assert!(pf.current().enforce("get", &json!({}), &roles(&["member"])));

        file.write("get: 'role:member and'\n", 20);
        assert_eq!(shown(&pf).as_deref(), Some("role:member"), "last good policy stays");
        let err = pf.take_reload_error();
        let names_get = |e: &PolicyError| matches!(e, PolicyError::InvalidRule { rule, .. } if rule == "get");
        assert!(matches!(&err, Some(PolicyError::File { source, .. }) if names_get(source)), "{err:?}");
        assert_eq!(shown(&pf).as_deref(), Some("role:member"));
        assert!(pf.take_reload_error().is_none(), "a bad file is reported once");

        std::fs::remove_file(&file.0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shown(&pf).as_deref(), Some("role:admin"), "no file: the defaults");
    }

    #[test]
    fn policy_file_looks_at_most_once_per_interval() {
        let file = TempFile::new("throttle");
        file.write("get: role:reader\n", 0);
        let pf = open(&file).with_check_interval(Duration::from_secs(3600));
        file.write("get: role:member\n", 10);
        assert_eq!(shown(&pf).as_deref(), Some("role:reader"), "no look before the interval");
        assert!(matches!(pf.reload(), Ok(true)));
        assert_eq!(shown(&pf).as_deref(), Some("role:member"));
        assert!(matches!(pf.reload(), Ok(false)), "an unchanged file is not read again");

        // With the default one-second interval, the change shows up by itself.
        let pf = open(&file);
        file.write("get: '@'\n", 20);
        let deadline = Instant::now() + Duration::from_secs(10);
        while shown(&pf).as_deref() != Some("@") {
            assert!(Instant::now() < deadline, "reload not seen before the deadline");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn policy_file_rejects_an_invalid_file_at_startup_and_allows_a_missing_one() {
        let file = TempFile::new("startup");
        let missing = open(&file);
        assert_eq!(shown(&missing).as_deref(), Some("role:admin"));
        assert_eq!(missing.path(), file.0.as_path());
        file.write("get: 'not'\n", 0);
        let err = PolicyFile::new(&file.0, DEFAULTS).err();
        assert!(matches!(err, Some(PolicyError::File { .. })));
        let err = PolicyFile::new(&file.0, &[("x", "(")]).err();
        assert!(matches!(err, Some(PolicyError::InvalidRule { .. })));
    }
}
