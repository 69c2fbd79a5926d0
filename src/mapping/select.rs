//! Which element of a multi-valued attribute a path addresses: `[type eq "work"]`,
//! `[primary eq true]`, or the primary-else-first element of a plain path.

use serde_json::{json, Value};

use super::{get_ci, type_is, Select};

pub(super) fn parse_select(inner: &str) -> Option<Select> {
    let mut words = inner.trim().splitn(3, char::is_whitespace);
    let (attr, op, value) = (words.next()?, words.next()?, words.next()?.trim());
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    if attr.eq_ignore_ascii_case("primary") {
        return value
            .eq_ignore_ascii_case("true")
            .then_some(Select::Primary);
    }
    if !attr.eq_ignore_ascii_case("type") {
        return None;
    }
    let value = value.strip_prefix('"')?.strip_suffix('"')?;
    (!value.is_empty() && !value.contains('"')).then(|| Select::Type(value.to_string()))
}

impl Select {
    /// The index of the element this selector addresses in a list.
    pub(super) fn position(&self, items: &[Value]) -> Option<usize> {
        match self {
            Select::Type(t) => items.iter().position(|e| type_is(e, t)),
            Select::Primary => items.iter().position(is_primary),
            Select::First => items.iter().position(is_primary).or(
                // No primary: the first element, if there is one.
                (!items.is_empty()).then_some(0),
            ),
        }
    }

    /// A new element holding `value` in `sub`, marked as this selector reads it back.
    pub(super) fn element(&self, sub: &str, value: Value) -> Value {
        match self {
            Select::Type(t) => json!({ "type": t, sub: value }),
            Select::Primary => json!({ sub: value, "primary": true }),
            Select::First => json!({ sub: value }),
        }
    }
}

fn is_primary(element: &Value) -> bool {
    match get_ci(element, "primary") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}
