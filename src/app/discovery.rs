//! What an app says of itself (RFC 7644 section 4): `/ServiceProviderConfig`, `/Schemas`
//! and `/ResourceTypes`, read into typed words, and the mapping held against them. Pure:
//! the SCIM client fetches the documents (`scim::discover`), `check --connect` and the run
//! use what they say.

use serde_json::Value;

use crate::mapping::{FieldPath, Mapping, Select};

/// The SCIM core User and Group schema URNs.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// What the app announced. A document the app does not serve leaves its part at RFC 7643's
/// defaults (`None` schemas: nothing is checked against them).
#[derive(Clone, Debug, PartialEq)]
pub struct Discovery {
    /// `filter.supported`: false means lookups read the list instead.
    pub filter: bool,
    pub patch: bool,
    pub etag: bool,
    pub bulk: bool,
    /// `sort.supported`: the changes query may then ask for the newest accounts first.
    pub sort: bool,
    /// The User resource: its core schema and its extensions.
    pub user: Option<ResourceSchema>,
    pub group: Option<ResourceSchema>,
}

impl Default for Discovery {
    /// What idsync assumes of an app that says nothing: RFC 7644's usual server.
    fn default() -> Self {
        Discovery {
            filter: true,
            patch: true,
            etag: false,
            bulk: false,
            sort: false,
            user: None,
            group: None,
        }
    }
}

/// One resource type's attributes: the core schema's, then each extension's by URN.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceSchema {
    pub attributes: Vec<Attribute>,
    pub extensions: Vec<(String, Vec<Attribute>)>,
}

/// One attribute as the app's `/Schemas` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: String,
    /// `string`, `boolean`, `complex`, `reference`... as the app wrote it.
    pub kind: String,
    pub multi_valued: bool,
    pub required: bool,
    pub mutability: Mutability,
    pub sub: Vec<Attribute>,
    /// A `reference`'s `referenceTypes` (`external`, `uri`, a resource type), lower-cased.
    pub reference_types: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
    WriteOnly,
}

impl Attribute {
    fn from_json(v: &Value) -> Option<Attribute> {
        let name = v.get("name")?.as_str()?.to_string();
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mutability = match v.get("mutability").and_then(Value::as_str) {
            Some(m) if m.eq_ignore_ascii_case("readOnly") => Mutability::ReadOnly,
            Some(m) if m.eq_ignore_ascii_case("immutable") => Mutability::Immutable,
            Some(m) if m.eq_ignore_ascii_case("writeOnly") => Mutability::WriteOnly,
            _ => Mutability::ReadWrite,
        };
        Some(Attribute {
            name,
            kind: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_string(),
            multi_valued: flag("multiValued"),
            required: flag("required"),
            mutability,
            sub: attributes_of(v.get("subAttributes")),
            reference_types: v
                .get("referenceTypes")
                .and_then(Value::as_array)
                .map(|types| {
                    types
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_ascii_lowercase)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The sub-attribute of that name (any case).
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        find(&self.sub, name)
    }
}

fn attributes_of(list: Option<&Value>) -> Vec<Attribute> {
    list.and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Attribute::from_json).collect())
        .unwrap_or_default()
}

fn find<'a>(list: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    list.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// The `Resources` of a list response, or a bare array.
fn resources(doc: &Value) -> Vec<&Value> {
    match doc {
        Value::Array(l) => l.iter().collect(),
        _ => doc
            .get("Resources")
            .and_then(Value::as_array)
            .map(|l| l.iter().collect())
            .unwrap_or_default(),
    }
}

impl Discovery {
    /// Reads the three documents (any may be missing: the app did not serve it).
    pub fn from_documents(
        config: Option<&Value>,
        schemas: Option<&Value>,
        resource_types: Option<&Value>,
    ) -> Discovery {
        let mut d = Discovery::default();
        if let Some(c) = config {
            let supported = |k: &str, default: bool| {
                c.get(k)
                    .and_then(|f| f.get("supported"))
                    .and_then(Value::as_bool)
                    .unwrap_or(default)
            };
            d.filter = supported("filter", true);
            d.patch = supported("patch", true);
            d.etag = supported("etag", false);
            d.bulk = supported("bulk", false);
            d.sort = supported("sort", false);
        }
        let Some(schemas) = schemas else {
            return d;
        };
        let by_id = |urn: &str| -> Option<Vec<Attribute>> {
            resources(schemas)
                .into_iter()
                .find(|s| {
                    s.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.eq_ignore_ascii_case(urn))
                })
                .map(|s| attributes_of(s.get("attributes")))
        };
        let extensions_of = |core: &str| -> Vec<String> {
            let types = resource_types.map(resources).unwrap_or_default();
            types
                .into_iter()
                .find(|t| {
                    t.get("schema")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case(core))
                })
                .and_then(|t| t.get("schemaExtensions"))
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|e| e.get("schema").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let resource = |core: &str| {
            by_id(core).map(|attributes| ResourceSchema {
                attributes,
                extensions: extensions_of(core)
                    .into_iter()
                    .filter_map(|urn| by_id(&urn).map(|a| (urn, a)))
                    .collect(),
            })
        };
        d.user = resource(USER_SCHEMA);
        d.group = resource(GROUP_SCHEMA);
        d
    }

    /// One line of what the app said, for `check --connect`.
    pub fn summary(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let schema = match &self.user {
            Some(u) => format!("a User schema of {} attributes", u.attributes.len()),
            None => "no /Schemas".to_string(),
        };
        let mut text = format!(
            "filter {}, patch {}, etag {}, bulk {}, sort {}, {schema}",
            yes(self.filter),
            yes(self.patch),
            yes(self.etag),
            yes(self.bulk),
            yes(self.sort)
        );
        if self.member_ref() {
            text.push_str(", group members with $ref");
        }
        text
    }

    /// True when the app's User schema says `photos` cannot be written.
    pub fn photos_read_only(&self) -> bool {
        self.user
            .as_ref()
            .and_then(|u| find(&u.attributes, "photos"))
            .is_some_and(|p| {
                p.mutability == Mutability::ReadOnly
                    || p.sub("value")
                        .is_some_and(|v| v.mutability == Mutability::ReadOnly)
            })
    }

    /// True when the app's User schema says `photos.value` is a reference to an external
    /// resource (RFC 7643 4.1.2: a URL that points to the image): an app that checks its
    /// schema refuses the `data:` URI `target.photo: scim` sends.
    pub fn photos_want_url(&self) -> bool {
        self.user
            .as_ref()
            .and_then(|u| find(&u.attributes, "photos"))
            .and_then(|p| p.sub("value"))
            .is_some_and(|v| {
                v.kind.eq_ignore_ascii_case("reference")
                    && v.reference_types.iter().any(|t| t == "external")
            })
    }

    /// True when the app's Group members carry a `$ref` sub-attribute (sent with each
    /// member then: some apps require it).
    pub fn member_ref(&self) -> bool {
        self.group
            .as_ref()
            .and_then(|g| find(&g.attributes, "members"))
            .is_some_and(|m| m.sub("$ref").is_some())
    }

    /// Holds a mapping against the app's User schema. `key` names a mapping entry in the
    /// config (`mapping.title`, `apps.miro.mapping.title`).
    pub fn check_mapping(&self, mapping: &Mapping, key: &dyn Fn(&str) -> String) -> Vec<Finding> {
        let Some(user) = &self.user else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for f in &mapping.fields {
            let text = f.path.to_string();
            if let Some((level, problem)) = check_path(user, &f.path, f.set_once) {
                out.push(Finding {
                    level,
                    key: key(&text),
                    problem,
                });
            }
        }
        let mapped: Vec<&FieldPath> = mapping.fields.iter().map(|f| &f.path).collect();
        for missing in required_unmapped(user, &mapped) {
            out.push(Finding {
                level: Level::Error,
                key: key(&missing),
                problem: format!(
                    "the app requires `{missing}` and the mapping does not fill it: every create fails; map it, e.g. `{missing}: \"{{cn}}\"`"
                ),
            });
        }
        out
    }
}

/// One mismatch between the mapping and the app's schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// The mapping key, as the config names it.
    pub key: String,
    /// What is wrong and the fix.
    pub problem: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Writes of it will fail.
    Error,
    /// Works, with a limit worth knowing.
    Warning,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.key, self.problem)
    }
}

/// What is wrong with one mapped path, if anything.
fn check_path(user: &ResourceSchema, path: &FieldPath, set_once: bool) -> Option<(Level, String)> {
    let error = |problem: String| Some((Level::Error, problem));
    let attr = match attribute_of(user, path) {
        Ok(Some(attr)) => attr,
        Ok(None) => return None,
        Err(problem) => return error(problem),
    };
    if attr.mutability == Mutability::ReadOnly {
        return error(format!(
            "`{}` is read-only in this app: every write of it fails; remove the entry",
            attr.name
        ));
    }
    let target = match sub_of(attr, path) {
        Ok(target) => target,
        Err(problem) => return error(problem),
    };
    if let Some(problem) = check_select(attr, path) {
        return error(problem);
    }
    if target.mutability == Mutability::ReadOnly {
        return error(format!(
            "`{path}` is read-only in this app: every write of it fails; remove the entry"
        ));
    }
    let immutable =
        attr.mutability == Mutability::Immutable || target.mutability == Mutability::Immutable;
    if immutable && !set_once {
        let fix = if path.is_user_name() {
            "a rename in the directory fails for that person; map userName from an attribute that never changes, or rename such accounts in the app by hand".to_string()
        } else {
            format!("write it once: `{path}: {{ value: \"...\", set: once }}`")
        };
        return Some((
            Level::Warning,
            format!("`{path}` is immutable in this app (set when the account is created): {fix}"),
        ));
    }
    None
}

/// The attribute a path names, in the core schema or its extension; `None` for a common
/// attribute the schema need not list; an error says what is missing.
fn attribute_of<'s>(
    user: &'s ResourceSchema,
    path: &FieldPath,
) -> Result<Option<&'s Attribute>, String> {
    let (list, place) = match &path.schema {
        None => (&user.attributes, "the app's User schema".to_string()),
        Some(urn) => match user
            .extensions
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(urn))
        {
            Some((_, attrs)) => (attrs, format!("the app's `{urn}` extension")),
            None => {
                let known: Vec<&str> = user.extensions.iter().map(|(u, _)| u.as_str()).collect();
                return Err(format!(
                    "the app's Users have no schema extension `{urn}` (it has: {}); remove the entry or use a schema the app lists",
                    list_or_none(&known)
                ));
            }
        },
    };
    if let Some(attr) = find(list, &path.attr) {
        return Ok(Some(attr));
    }
    // RFC 7643 section 3.1: `externalId` (like `id` and `meta`) is common to every
    // resource, and schemas need not list it.
    if path.schema.is_none() && path.attr.eq_ignore_ascii_case("externalId") {
        return Ok(None);
    }
    let names: Vec<&str> = list.iter().map(|a| a.name.as_str()).collect();
    let hint = closest(&path.attr, &names)
        .map(|n| format!("did you mean `{n}`? "))
        .unwrap_or_default();
    Err(format!(
        "{place} has no attribute `{}`: every write of it fails; {hint}remove the entry or map one the app has",
        path.attr
    ))
}

/// The sub-attribute a path writes (the attribute itself when it names none).
fn sub_of<'a>(attr: &'a Attribute, path: &FieldPath) -> Result<&'a Attribute, String> {
    match (&path.sub, attr.multi_valued) {
        (None, true) => Err(format!(
            "`{}` is a list (multi-valued) in this app: map one element's sub-attribute, e.g. `{}.value`",
            attr.name, attr.name
        )),
        (None, false) => Ok(attr),
        (Some(sub), _) => match attr.sub(sub) {
            Some(s) => Ok(s),
            None if attr.sub.is_empty() && attr.kind != "complex" => Err(format!(
                "`{}` has no sub-attributes in this app: map `{}` itself",
                attr.name, attr.name
            )),
            None => {
                let names: Vec<&str> = attr.sub.iter().map(|a| a.name.as_str()).collect();
                Err(format!(
                    "`{}` has no sub-attribute `{sub}` in this app (it has: {}); map one of those",
                    attr.name,
                    list_or_none(&names)
                ))
            }
        },
    }
}

/// A selector the attribute cannot honour.
fn check_select(attr: &Attribute, path: &FieldPath) -> Option<String> {
    let select = path.select.as_ref()?;
    if !attr.multi_valued {
        return Some(format!(
            "`{}` is a single value in this app, not a list: map `{}.{}` without a selector",
            attr.name,
            attr.name,
            path.sub.as_deref().unwrap_or("value")
        ));
    }
    let sub = path.sub.as_deref().unwrap_or("value");
    match select {
        Select::Type(_) if attr.sub("type").is_none() => {
            let fix = if attr.sub("primary").is_some() {
                format!("`{}[primary eq true].{sub}`", attr.name)
            } else {
                format!("`{}.{sub}`", attr.name)
            };
            Some(format!(
                "`{}` elements have no `type` in this app, so a typed path is refused on every create; map {fix} instead",
                attr.name
            ))
        }
        Select::Primary if attr.sub("primary").is_none() => Some(format!(
            "`{}` elements have no `primary` in this app; map `{}.{sub}` instead",
            attr.name, attr.name
        )),
        _ => None,
    }
}

/// Required attributes (and required sub-attributes of required or mapped complex ones)
/// that no mapped path fills. Read-only ones are the app's to fill; `active` is the
/// lifecycle's; `id`, `schemas` and `meta` are the protocol's.
fn required_unmapped(user: &ResourceSchema, mapped: &[&FieldPath]) -> Vec<String> {
    let writable = |a: &Attribute| {
        a.mutability != Mutability::ReadOnly
            && !["id", "active", "schemas", "meta", "externalId"]
                .iter()
                .any(|n| a.name.eq_ignore_ascii_case(n))
    };
    let core_mapped = |attr: &str, sub: Option<&str>| {
        mapped.iter().any(|p| {
            p.schema.is_none()
                && p.attr.eq_ignore_ascii_case(attr)
                && match sub {
                    None => true,
                    Some(s) => p.sub.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(s)),
                }
        })
    };
    let mut out = Vec::new();
    for a in user.attributes.iter().filter(|a| writable(a)) {
        let touched = core_mapped(&a.name, None);
        if a.required && !touched && a.sub.is_empty() {
            out.push(a.name.clone());
        }
        if !(a.required || touched) {
            continue;
        }
        for s in a.sub.iter().filter(|s| s.required && writable(s)) {
            if !core_mapped(&a.name, Some(&s.name)) {
                // A list's required sub-attribute binds only elements idsync writes.
                if a.multi_valued && !touched {
                    continue;
                }
                out.push(format!("{}.{}", a.name, s.name));
            }
        }
    }
    out
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The name among `names` closest to `wanted` (case-insensitive edit distance <= 2, or one
/// containing the other), for a "did you mean".
fn closest<'a>(wanted: &str, names: &[&'a str]) -> Option<&'a str> {
    let w = wanted.to_ascii_lowercase();
    names
        .iter()
        .map(|n| (strsim::levenshtein(&w, &n.to_ascii_lowercase()), *n))
        .filter(|(d, n)| {
            *d <= 2 || {
                let n = n.to_ascii_lowercase();
                n.len() > 3 && (w.contains(&n) || n.contains(&w))
            }
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests;
