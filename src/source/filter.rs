//! A small evaluator for the LDAP filters (RFC 4515) of the `disabled:` rule.
//!
//! idsync reads every in-scope entry once and decides "disabled" on its own attributes, so
//! the rule costs no second search. Supported: `&`, `|`, `!`, presence `(a=*)`, equality
//! `(a=v)` (case-insensitive, as directory string attributes compare) and the Active
//! Directory bit rules `(a:1.2.840.113556.1.4.803:=2)` (AND) and `...804` (OR).

use crate::model::DirectoryUser;

const AD_BIT_AND: &str = "1.2.840.113556.1.4.803";
const AD_BIT_OR: &str = "1.2.840.113556.1.4.804";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Present(String),
    Equal(String, String),
    BitAnd(String, u64),
    BitOr(String, u64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LDAP filter `{filter}`: {why}")]
pub struct FilterError {
    filter: String,
    why: String,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let err = |why: &str| FilterError {
            filter: text.to_string(),
            why: why.to_string(),
        };
        let mut p = Parser {
            s: text.trim().as_bytes(),
            at: 0,
        };
        let f = p.filter().map_err(|why| err(&why))?;
        if p.at != p.s.len() {
            return Err(err("unexpected text after the closing `)`"));
        }
        Ok(f)
    }

    /// Attribute names this filter reads (lower-cased).
    pub fn attributes(&self, out: &mut Vec<String>) {
        match self {
            Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| f.attributes(out)),
            Filter::Not(f) => f.attributes(out),
            Filter::Present(a)
            | Filter::Equal(a, _)
            | Filter::BitAnd(a, _)
            | Filter::BitOr(a, _) => out.push(a.clone()),
        }
    }

    pub fn matches(&self, user: &DirectoryUser) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(user)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(user)),
            Filter::Not(f) => !f.matches(user),
            Filter::Present(a) => !user.values(a).is_empty(),
            Filter::Equal(a, v) => user
                .values(a)
                .iter()
                .any(|x| x.eq_ignore_ascii_case(v) || x.to_lowercase() == v.to_lowercase()),
            Filter::BitAnd(a, bits) => numbers(user, a).any(|n| n & bits == *bits),
            Filter::BitOr(a, bits) => numbers(user, a).any(|n| n & bits != 0),
        }
    }
}

fn numbers<'u>(user: &'u DirectoryUser, attr: &str) -> impl Iterator<Item = u64> + 'u {
    // AD stores userAccountControl as a signed 32-bit integer.
    user.values(attr).iter().filter_map(|v| {
        v.trim()
            .parse::<i64>()
            .ok()
            .map(|n| (n as u64) & 0xffff_ffff)
    })
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn eat(&mut self, c: u8) -> Result<(), String> {
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.at))
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.eat(b'(')?;
        let f = match self.s.get(self.at) {
            Some(b'&') => {
                self.at += 1;
                Filter::And(self.list()?)
            }
            Some(b'|') => {
                self.at += 1;
                Filter::Or(self.list()?)
            }
            Some(b'!') => {
                self.at += 1;
                Filter::Not(Box::new(self.filter()?))
            }
            _ => self.item()?,
        };
        self.eat(b')')?;
        Ok(f)
    }

    fn list(&mut self) -> Result<Vec<Filter>, String> {
        let mut out = Vec::new();
        while self.s.get(self.at) == Some(&b'(') {
            out.push(self.filter()?);
        }
        if out.is_empty() {
            return Err(format!(
                "`&` and `|` need at least one `(...)` at byte {}",
                self.at
            ));
        }
        Ok(out)
    }

    fn item(&mut self) -> Result<Filter, String> {
        let start = self.at;
        while self.at < self.s.len() && !matches!(self.s[self.at], b'=' | b')' | b'(') {
            self.at += 1;
        }
        let lhs =
            std::str::from_utf8(&self.s[start..self.at]).map_err(|_| "not UTF-8".to_string())?;
        self.eat(b'=')?;
        let vstart = self.at;
        while self.at < self.s.len() && self.s[self.at] != b')' {
            self.at += 1;
        }
        let raw = &self.s[vstart..self.at];
        if let Some(rule) = lhs.strip_suffix(':') {
            let (attr, oid) = rule
                .split_once(':')
                .ok_or("an extensible match is written (attr:oid:=value)")?;
            let value = unescape(raw)?;
            let bits: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("`{value}` is not a number for the bit rule"))?;
            return match oid {
                AD_BIT_AND => Ok(Filter::BitAnd(attr_name(attr)?, bits)),
                AD_BIT_OR => Ok(Filter::BitOr(attr_name(attr)?, bits)),
                _ => Err(format!("matching rule {oid} is not supported (only the AD bit rules {AD_BIT_AND} and {AD_BIT_OR})")),
            };
        }
        let attr = attr_name(lhs)?;
        if raw == b"*" {
            return Ok(Filter::Present(attr));
        }
        if raw.contains(&b'*') {
            return Err("substring filters are not supported in this rule; use presence (a=*) or equality (a=v)".into());
        }
        if matches!(lhs.as_bytes().last(), Some(b'~' | b'<' | b'>')) {
            return Err("only = is supported in this rule".into());
        }
        Ok(Filter::Equal(attr, unescape(raw)?))
    }
}

fn attr_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ';');
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{s}` is not an attribute name (or this comparison is not supported)"
        ))
    }
}

/// RFC 4515 value escapes: `\2a` -> `*`.
fn unescape(raw: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            let hex = raw
                .get(i + 1..i + 3)
                .ok_or("a `\\` must be followed by two hex digits")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "bad escape")?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("`\\{hex}` is not a hex escape"))?,
            );
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the value is not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Anchor;

    fn user(attrs: &[(&str, &str)]) -> DirectoryUser {
        let mut u = DirectoryUser {
            anchor: Anchor::new("x"),
            locator: String::new(),
            attrs: Default::default(),
            disabled: false,
            problems: vec![],
            photo: None,
            sync_id: None,
        };
        for (k, v) in attrs {
            u.attrs.add(k, vec![v.to_string()]);
        }
        u
    }

    #[test]
    fn presence_rule_marks_locked_accounts() {
        let f = Filter::parse("(pwdAccountLockedTime=*)").unwrap();
        assert!(f.matches(&user(&[("pwdAccountLockedTime", "20260101000000Z")])));
        assert!(!f.matches(&user(&[])));
    }

    #[test]
    fn ad_disabled_bit_is_read_from_user_account_control() {
        let f = Filter::parse("(userAccountControl:1.2.840.113556.1.4.803:=2)").unwrap();
        assert!(f.matches(&user(&[("userAccountControl", "514")])));
        assert!(!f.matches(&user(&[("userAccountControl", "512")])));
        assert!(f.matches(&user(&[("userAccountControl", "-2147483646")])));
    }

    #[test]
    fn boolean_combinations_and_escapes() {
        let f = Filter::parse("(|(employeeType=left)(&(!(status=active))(status=*)))").unwrap();
        assert!(f.matches(&user(&[("employeeType", "LEFT")])));
        assert!(f.matches(&user(&[("status", "gone")])));
        assert!(!f.matches(&user(&[("status", "Active")])));
        let f = Filter::parse(r"(description=a\2ab)").unwrap();
        assert!(f.matches(&user(&[("description", "a*b")])));
        // RFC 4515 vectors: an escaped `*)(uid=*` is one literal value, so is a NUL.
        let f = Filter::parse(r"(description=\2a\29\28uid=\2a)").unwrap();
        assert!(f.matches(&user(&[("description", "*)(uid=*")])));
        assert!(!f.matches(&user(&[("description", "anything")])));
        let f = Filter::parse(r"(description=a\00b\5c\22)").unwrap();
        assert!(f.matches(&user(&[("description", "a\0b\\\"")])));
    }

    #[test]
    fn unsupported_filters_are_refused_with_a_reason() {
        assert!(Filter::parse("(cn=a*)")
            .unwrap_err()
            .to_string()
            .contains("substring"));
        assert!(Filter::parse("(cn=a").is_err());
        assert!(Filter::parse("(&)").is_err());
        assert!(Filter::parse("(a:1.2.3:=4)").is_err());
    }
}
