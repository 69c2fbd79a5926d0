//! Config mapping expressions -> the account fields a directory user should have.
//!
//! Owns the two small languages of the `mapping:` section: templates (`"{givenName} {sn}"`,
//! `"{businessPhones[0]}"`) and SCIM attribute paths (`name.givenName`,
//! `emails[type eq "work"].value`, `urn:...:User:department`), and how a path reads from and
//! writes into a SCIM resource. Pure: no I/O, no clock.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Map, Value};

use crate::model::DirectoryUser;

mod select;
use select::parse_select;

/// The SCIM core User schema URN.
pub const CORE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// A mapping expression that cannot be understood; the caller prefixes the config key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MappingError(String);

/// A SCIM attribute path idsync knows how to read and write.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath {
    /// Extension schema URN (`urn:...:enterprise:2.0:User`); `None` for the core schema.
    pub schema: Option<String>,
    pub attr: String,
    /// The element of a multi-valued attribute this path addresses.
    pub select: Option<Select>,
    pub sub: Option<String>,
}

/// Which element of a multi-valued attribute (`emails`, `phoneNumbers`...) a path addresses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Select {
    /// `emails[type eq "work"].value`: the element of that type, written with its `type`.
    Type(String),
    /// `emails[primary eq true].value`: the primary element, written with `primary: true`
    /// (for apps whose elements have no `type`).
    Primary,
    /// `emails.value` on a multi-valued attribute: the primary element, else the first;
    /// written as a one-element list `[{"value": ...}]` when there is none (never an object).
    First,
}

/// The multi-valued attributes of the core User schema (RFC 7643 section 4.1.2).
pub const CORE_MULTI_VALUED: [&str; 9] = [
    "emails",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
];

/// True for a core User attribute that holds a list.
pub fn is_core_multi_valued(attr: &str) -> bool {
    CORE_MULTI_VALUED
        .iter()
        .any(|a| a.eq_ignore_ascii_case(attr))
}

impl FieldPath {
    /// A path kept as written, unparsed (shown, never written to an app).
    pub fn verbatim(text: &str) -> FieldPath {
        FieldPath {
            schema: None,
            attr: text.to_string(),
            select: None,
            sub: None,
        }
    }

    pub fn parse(text: &str) -> Result<FieldPath, MappingError> {
        let bad = |why: &str| MappingError(format!("attribute path `{text}`: {why}"));
        let (schema, rest) = if text.len() > 4
            && text
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            let cut = text
                .rfind(':')
                .ok_or_else(|| bad("an extension path is `<schema urn>:<attribute>`"))?;
            (Some(text[..cut].to_string()), &text[cut + 1..])
        } else {
            (None, text)
        };
        let (head, sub) = match rest.find('.') {
            Some(dot) if !rest[..dot].contains('[') || rest[..dot].ends_with(']') => {
                (&rest[..dot], Some(rest[dot + 1..].to_string()))
            }
            _ => (rest, None),
        };
        let (attr, select) = match head.find('[') {
            None => (head.to_string(), None),
            Some(open) => {
                let inner = head[open + 1..]
                    .strip_suffix(']')
                    .ok_or_else(|| bad("a `[` needs its closing `]`"))?;
                let select = parse_select(inner).ok_or_else(|| {
                    bad("the selectors supported are [type eq \"<value>\"] and [primary eq true]")
                })?;
                (head[..open].to_string(), Some(select))
            }
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        if !valid(&attr) {
            return Err(bad("attribute names are letters, digits, `_`, `-`"));
        }
        if let Some(sub) = &sub {
            if !valid(sub) {
                return Err(bad("a sub-attribute name is letters, digits, `_`, `-`"));
            }
        }
        if select.is_some() && sub.is_none() {
            return Err(bad(
                "a selected value needs its sub-attribute, e.g. `emails[type eq \"work\"].value`",
            ));
        }
        let core_list = schema.is_none() && is_core_multi_valued(&attr);
        if core_list && sub.is_none() {
            return Err(bad(&format!(
                "`{attr}` is a list (multi-valued): map one element's sub-attribute, e.g. `{attr}.value`, `{attr}[type eq \"work\"].value` or `{attr}[primary eq true].value`"
            )));
        }
        let select = select.or(core_list.then_some(Select::First));
        if attr.eq_ignore_ascii_case("active")
            || attr.eq_ignore_ascii_case("id")
            || attr.eq_ignore_ascii_case("meta")
        {
            return Err(bad(
                "`active`, `id` and `meta` belong to the lifecycle and the app, not to the mapping",
            ));
        }
        Ok(FieldPath {
            schema,
            attr,
            select,
            sub,
        })
    }

    /// The resource's top-level attribute this path lives in (the extension URN, or the
    /// core attribute).
    pub fn top(&self) -> &str {
        self.schema.as_deref().unwrap_or(&self.attr)
    }

    /// True for `userName`, the field every account must have.
    pub fn is_user_name(&self) -> bool {
        self.schema.is_none() && self.sub.is_none() && self.attr.eq_ignore_ascii_case("userName")
    }

    /// Read this path's value from a SCIM resource (string, number or boolean as text).
    pub fn get(&self, resource: &Value) -> Option<String> {
        let container = match &self.schema {
            Some(urn) => get_ci(resource, urn)?,
            None => resource,
        };
        let value = get_ci(container, &self.attr)?;
        let value = match &self.select {
            Some(select) => {
                let list = value.as_array()?;
                list.get(select.position(list)?)?
            }
            None => value,
        };
        let value = match &self.sub {
            Some(sub) => get_ci(value, sub)?,
            None => value,
        };
        scalar_text(value)
    }

    /// Write (or with `None` remove) this path's value in a SCIM resource, keeping every
    /// other attribute and every other element of a multi-valued attribute.
    pub fn set(&self, resource: &mut Value, value: Option<&str>) {
        if !resource.is_object() {
            *resource = Value::Object(Map::new());
        }
        if let Some(urn) = &self.schema {
            add_schema(resource, urn);
        }
        let container = match &self.schema {
            Some(urn) => entry_ci(resource, urn),
            None => resource,
        };
        let value = value.map(|v| Value::String(v.to_string()));
        match (&self.select, &self.sub) {
            (None, None) => put_ci(container, &self.attr, value),
            (None, Some(sub)) => {
                let parent = entry_ci(container, &self.attr);
                put_ci(parent, sub, value);
                if parent.as_object().is_some_and(Map::is_empty) {
                    put_ci(container, &self.attr, None);
                }
            }
            (Some(select), Some(sub)) => {
                let list = entry_ci(container, &self.attr);
                if !list.is_array() {
                    *list = Value::Array(Vec::new());
                }
                let Some(items) = list.as_array_mut() else {
                    return;
                };
                match (select.position(items), value) {
                    (Some(i), Some(v)) => put_ci(&mut items[i], sub, Some(v)),
                    (Some(i), None) => {
                        items.remove(i);
                    }
                    (None, Some(v)) => items.push(select.element(sub, v)),
                    (None, None) => {}
                }
                if items.is_empty() {
                    put_ci(container, &self.attr, None);
                }
            }
            (Some(_), None) => {}
        }
    }

    /// The top-level attribute a PATCH must replace to change this path.
    pub fn patch_target(&self) -> String {
        match (&self.schema, &self.select, &self.sub) {
            (Some(urn), _, _) => format!("{urn}:{}", self.attr),
            (None, Some(_), _) => self.attr.clone(),
            (None, None, Some(sub)) => format!("{}.{sub}", self.attr),
            (None, None, None) => self.attr.clone(),
        }
    }

    /// Read the value a PATCH of `patch_target()` carries, from a resource.
    pub fn patch_value(&self, resource: &Value) -> Option<Value> {
        let container = match &self.schema {
            Some(urn) => get_ci(resource, urn)?,
            None => resource,
        };
        let top = get_ci(container, &self.attr)?;
        match (&self.schema, &self.select, &self.sub) {
            (None, None, Some(sub)) => get_ci(top, sub).cloned(),
            _ => Some(top.clone()),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.schema {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.attr)?;
        match &self.select {
            Some(Select::Type(t)) => write!(f, "[type eq \"{t}\"]")?,
            Some(Select::Primary) => f.write_str("[primary eq true]")?,
            Some(Select::First) | None => {}
        }
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

fn type_is(element: &Value, wanted: &str) -> bool {
    get_ci(element, "type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case(wanted))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// SCIM attribute names are case-insensitive (RFC 7643 section 2.1).
fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    map.get(key)
        .or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn key_ci(map: &Map<String, Value>, key: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_string())
}

fn entry_ci<'v>(value: &'v mut Value, key: &str) -> &'v mut Value {
    if !value.is_object() {
        *value = Value::Object(Map::new());
    }
    let Value::Object(map) = value else {
        unreachable!("made an object above")
    };
    let key = key_ci(map, key);
    let slot = map.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot
}

fn put_ci(value: &mut Value, key: &str, new: Option<Value>) {
    if let Value::Object(map) = value {
        let key = key_ci(map, key);
        match new {
            Some(v) => {
                map.insert(key, v);
            }
            None => {
                map.remove(&key);
            }
        }
    }
}

fn add_schema(resource: &mut Value, urn: &str) {
    let schemas = entry_ci(resource, "schemas");
    if !schemas.is_array() {
        *schemas = json!([CORE_USER_SCHEMA]);
    }
    if let Some(list) = schemas.as_array_mut() {
        if !list
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        {
            list.push(Value::String(urn.to_string()));
        }
    }
}

/// One `{...}` or literal piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Attr { name: String, index: usize },
}

/// A value template such as `"{givenName} {sn}"` or `"{businessPhones[0]}"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, MappingError> {
        let bad = |why: String| MappingError(format!("template `{text}`: {why}"));
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(bad(format!(
                        "stray `}}` at byte {at}; write `}}}}` for a literal brace"
                    )))
                }
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(bad(format!("`{{` at byte {at} is never closed")));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(parse_attr_ref(&inner).map_err(bad)?);
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template {
            source: text.to_string(),
            pieces,
        })
    }

    /// The directory attributes this template reads (lower-cased).
    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Attr { name, .. } => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Render for one user. `None` when every attribute it names is empty (the field is then
    /// left unset), or when the result is blank.
    pub fn render(&self, user: &DirectoryUser) -> Option<String> {
        let mut out = String::new();
        let mut any_attr = false;
        let mut any_value = false;
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Attr { name, index } => {
                    any_attr = true;
                    if let Some(v) = user.values(name).get(*index) {
                        any_value |= !v.is_empty();
                        out.push_str(v);
                    }
                }
            }
        }
        if any_attr && !any_value {
            return None;
        }
        let out = out.trim();
        (!out.is_empty()).then(|| out.to_string())
    }
}

fn parse_attr_ref(inner: &str) -> Result<Piece, String> {
    let inner = inner.trim();
    let (name, index) = match inner.find('[') {
        None => (inner, 0),
        Some(open) => {
            let digits = inner[open + 1..]
                .strip_suffix(']')
                .ok_or_else(|| format!("`{{{inner}}}`: an index is written `[0]`"))?;
            let index = digits
                .parse::<usize>()
                .map_err(|_| format!("`{{{inner}}}`: the index must be a number such as [0]"))?;
            (&inner[..open], index)
        }
    };
    let ok = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ';');
    if !ok {
        return Err(format!(
            "`{{{inner}}}` is not a directory attribute name (letters, digits, `-`, `_`)"
        ));
    }
    Ok(Piece::Attr {
        name: name.to_ascii_lowercase(),
        index,
    })
}

/// One `mapping:` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldMapping {
    pub path: FieldPath,
    pub template: Template,
    /// Written when the account is created (or adopted without a value), never overwritten.
    pub set_once: bool,
}

/// The whole `mapping:` section, in config order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub fields: Vec<FieldMapping>,
}

/// Desired values by field path text; `None` = the field should be absent.
pub type Desired = BTreeMap<String, Option<String>>;

impl Mapping {
    /// Checks the rules a mapping must satisfy as a whole.
    pub fn new(fields: Vec<FieldMapping>) -> Result<Mapping, MappingError> {
        let user_name = fields.iter().find(|f| f.path.is_user_name());
        match user_name {
            None => {
                return Err(MappingError(
                    "`userName` must be mapped: every SCIM account needs one".into(),
                ))
            }
            Some(f) if f.set_once => {
                return Err(MappingError(
                    "`userName` cannot be `set: once`: renames upstream must propagate".into(),
                ))
            }
            Some(_) => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &fields {
            if !seen.insert(f.path.to_string().to_ascii_lowercase()) {
                return Err(MappingError(format!("`{}` is mapped twice", f.path)));
            }
        }
        Ok(Mapping { fields })
    }

    /// Every directory attribute the mapping reads (lower-cased, sorted).
    pub fn attributes(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<String> = self
            .fields
            .iter()
            .flat_map(|f| f.template.attributes().map(str::to_string))
            .collect();
        set.into_iter().collect()
    }

    /// The rendered userName for a user.
    pub fn user_name(&self, user: &DirectoryUser) -> Option<String> {
        self.fields
            .iter()
            .find(|f| f.path.is_user_name())?
            .template
            .render(user)
    }

    /// Desired value of every mapped field for this user.
    pub fn desired(&self, user: &DirectoryUser) -> Desired {
        self.fields
            .iter()
            .map(|f| (f.path.to_string(), f.template.render(user)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
