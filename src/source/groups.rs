//! Directory groups, read after the people: LDAP `groupOfNames` / `groupOfUniqueNames` /
//! `posixGroup` / AD `group` (ranged `member;range=` retrieval, so large AD groups are read
//! whole) and Graph `/groups` with their `/members`. Members are resolved to the people the
//! same run read; members outside that population are not idsync's to manage and are left
//! out. Nested groups are flattened into their parents when `groups.nested` is on.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use ldap3::{Scope, SearchEntry};

use super::ldap::{LdapReader, Search};
use super::settings::{GroupsConfig, LdapConfig, LdapIncremental};
use super::SourceError;
use crate::model::{Anchor, DirectoryGroup, DirectoryUser};

/// A group as read, before nesting is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawGroup {
    /// How other groups name this one as a member: its normalised DN, or its Graph id.
    pub key: String,
    pub anchor: Anchor,
    pub locator: String,
    /// The rendered name (`None`: the name template rendered empty).
    pub name: Option<String>,
    /// In-scope people who are direct members.
    pub people: BTreeSet<Anchor>,
    /// Keys of member groups.
    pub groups: BTreeSet<String>,
}

/// The groups to sync: named, filtered by `only`, nested groups flattened when configured.
/// A group whose name renders empty is skipped with a warning naming it.
pub fn assemble(raw: Vec<RawGroup>, cfg: &GroupsConfig) -> Vec<DirectoryGroup> {
    let by_key: BTreeMap<&str, &Anchor> = raw.iter().map(|g| (g.key.as_str(), &g.anchor)).collect();
    let direct: BTreeMap<Anchor, BTreeSet<Anchor>> = raw
        .iter()
        .map(|g| (g.anchor.clone(), g.people.clone()))
        .collect();
    let children: BTreeMap<Anchor, BTreeSet<Anchor>> = raw
        .iter()
        .map(|g| {
            let kids = g
                .groups
                .iter()
                .filter_map(|k| by_key.get(k.as_str()).map(|a| (*a).clone()))
                .collect();
            (g.anchor.clone(), kids)
        })
        .collect();
    let mut out = Vec::new();
    for g in &raw {
        let Some(name) = &g.name else {
            tracing::warn!(group = %g.locator, "group skipped: groups.name renders empty for it; fill the attribute it reads or change groups.name");
            continue;
        };
        if cfg
            .only
            .as_ref()
            .is_some_and(|only| !only.contains(&name.to_lowercase()))
        {
            continue;
        }
        let transitive = crate::groups::flatten(&g.anchor, &direct, &children);
        let members = if cfg.nested {
            transitive.clone()
        } else {
            g.people.clone()
        };
        out.push(DirectoryGroup {
            anchor: g.anchor.clone(),
            locator: g.locator.clone(),
            name: name.clone(),
            members,
            direct: g.people.clone(),
            transitive,
        });
    }
    out
}

/// What a group search asks for: the name template's attributes, the member attributes
/// (AD's ranged `member`), the anchor.
fn group_attributes(cfg: &GroupsConfig) -> Vec<String> {
    let mut attrs: Vec<String> = cfg.name.attributes().map(str::to_ascii_lowercase).collect();
    attrs.extend(MEMBER_ATTRS.iter().map(|s| s.to_string()));
    if cfg.anchor.eq_ignore_ascii_case("objectGUID") {
        // Active Directory: ask for the members range by range from the start. AD caps
        // an unranged `member` at MaxValRange (1500) anyway; Samba's AD DC does not, and
        // answers explicit ranges the same way, so both are read by the same loop.
        attrs.retain(|a| a != "member");
        attrs.push(format!("member;range=0-{}", AD_MAX_VAL_RANGE - 1));
    }
    attrs.push(cfg.anchor.to_ascii_lowercase());
    attrs.sort();
    attrs.dedup();
    attrs
}

/// A DN in a form two spellings of the same DN share (RFC 4514): lower case, no spaces
/// around `,` and `=`, and every escape (`\,`, `\2C`, `\C3\A9`) decoded, with the characters
/// that must stay escaped written `\c` again.
pub fn normal_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let b = dn.trim().as_bytes();
    let mut i = 0;
    // Escaped bytes, decoded together so a multi-byte character escaped byte by byte
    // comes out whole.
    let mut data: Vec<u8> = Vec::new();
    let flush = |data: &mut Vec<u8>, out: &mut String| {
        for c in String::from_utf8_lossy(data).chars() {
            if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#') {
                out.push('\\');
            }
            out.extend(c.to_lowercase());
        }
        data.clear();
    };
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        data.push(byte);
                        i += 3;
                    }
                    None => {
                        if let Some(&c) = b.get(i + 1) {
                            data.push(c);
                        }
                        i += 2;
                    }
                }
                continue;
            }
            c @ (b',' | b'=') => {
                flush(&mut data, &mut out);
                while out.ends_with(' ') && !out.ends_with("\\ ") {
                    out.pop();
                }
                out.push(c as char);
                while b.get(i + 1) == Some(&b' ') {
                    i += 1;
                }
            }
            _ => {
                // Plain text up to the next escape or separator, as UTF-8.
                flush(&mut data, &mut out);
                let end = b[i..]
                    .iter()
                    .position(|c| matches!(c, b'\\' | b',' | b'='))
                    .map_or(b.len(), |n| i + n);
                out.push_str(&String::from_utf8_lossy(&b[i..end]).to_lowercase());
                i = end;
                continue;
            }
        }
        i += 1;
    }
    flush(&mut data, &mut out);
    out
}

/// An attribute name with an AD range option: `member;range=0-1499` -> (`member`, 0,
/// Some(1499)); `member;range=1500-*` -> (`member`, 1500, None): the last range.
pub fn range_of(attr: &str) -> Option<(&str, u64, Option<u64>)> {
    let (base, opt) = attr.split_once(';')?;
    let spec = opt.strip_prefix("range=")?;
    let (lo, hi) = spec.split_once('-')?;
    let lo = lo.parse().ok()?;
    let hi = match hi {
        "*" => None,
        n => Some(n.parse().ok()?),
    };
    Some((base, lo, hi))
}

/// Where the further ranges of an attribute come from.
pub trait Ranges {
    /// Reads one more range by attribute name (`member;range=1500-*`); returns the
    /// attribute as it came back (`None`: not there).
    fn fetch(
        &mut self,
        attr: String,
    ) -> impl Future<Output = Result<Option<(String, Vec<String>)>, SourceError>>;
}

/// Reads a ranged attribute to its end: `first` is the (name, values) the search returned.
/// AD answers each request with the next range, the last one ending in `*`.
pub async fn read_ranged(
    first: (String, Vec<String>),
    fetch: &mut impl Ranges,
) -> Result<Vec<String>, SourceError> {
    let (mut name, mut values) = first;
    let mut all = Vec::new();
    loop {
        let Some((base, lo, hi)) = range_of(&name) else {
            all.extend(values);
            return Ok(all);
        };
        let got = values.len() as u64;
        all.extend(values);
        let Some(hi) = hi else {
            return Ok(all);
        };
        if hi < lo || got == 0 {
            return Err(SourceError::BadEntry {
                dn: String::new(),
                detail: format!("the server sent range {lo}-{hi} of {base} with {got} values; the read cannot go on"),
            });
        }
        let next = format!("{base};range={}-*", hi + 1);
        match fetch.fetch(next.clone()).await? {
            Some((n, v)) => {
                let progressed = range_of(&n).is_some_and(|(_, l, _)| l == hi + 1);
                if !progressed && range_of(&n).is_some() {
                    return Err(SourceError::BadEntry {
                        dn: String::new(),
                        detail: format!("asked for {next}, the server sent {n}"),
                    });
                }
                name = n;
                values = v;
            }
            None => return Ok(all),
        }
    }
}

/// Members per range asked of Active Directory (its default MaxValRange).
const AD_MAX_VAL_RANGE: u32 = 1500;

/// LDAP group attributes that name members.
const MEMBER_ATTRS: [&str; 3] = ["member", "uniquemember", "memberuid"];

impl LdapReader {
    /// Reads the configured groups and resolves their members against `people`.
    pub async fn read_groups(
        &self,
        cfg: &GroupsConfig,
        people: &[DirectoryUser],
    ) -> Result<Vec<DirectoryGroup>, SourceError> {
        let base = cfg.base_dn.clone().unwrap_or_default();
        let attrs = group_attributes(cfg);
        // The same reader, pointed at the groups (anchor attribute, base, filter).
        let groups_reader = LdapReader::new(LdapConfig {
            base_dn: base.clone(),
            filter: cfg.filter.clone().unwrap_or_default(),
            one_level: cfg.one_level,
            anchor: cfg.anchor.clone(),
            disabled: None,
            attributes: attrs.clone(),
            photo: None,
            incremental: LdapIncremental::None,
            ..self.config().clone()
        });
        let mut ldap = groups_reader.connect().await?;
        let search = Search {
            base: &base,
            scope: if cfg.one_level {
                Scope::OneLevel
            } else {
                Scope::Subtree
            },
            filter: cfg.filter.as_deref().unwrap_or_default(),
            attrs,
            controls: Vec::new(),
        };
        let entries = groups_reader.paged_search(&mut ldap, search).await;
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                let _ = ldap.unbind().await;
                return Err(e);
            }
        };
        let by_dn: BTreeMap<String, &Anchor> = people
            .iter()
            .map(|p| (normal_dn(&p.locator), &p.anchor))
            .collect();
        let by_uid: BTreeMap<String, &Anchor> = people
            .iter()
            .flat_map(|p| {
                p.values(&cfg.member_uid)
                    .iter()
                    .map(move |v| (v.to_lowercase(), &p.anchor))
            })
            .collect();
        let mut raw = Vec::with_capacity(entries.len());
        let mut result = Ok(());
        for entry in entries {
            match self
                .raw_group(&groups_reader, &mut ldap, entry, cfg, &by_dn, &by_uid)
                .await
            {
                Ok(g) => raw.push(g),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let _ = ldap.unbind().await;
        result?;
        // Member DNs that name a group are nesting, not people.
        let group_keys: BTreeSet<String> = raw.iter().map(|g| g.key.clone()).collect();
        for g in &mut raw {
            g.groups.retain(|k| group_keys.contains(k));
        }
        Ok(assemble(raw, cfg))
    }

    async fn raw_group(
        &self,
        groups_reader: &LdapReader,
        ldap: &mut ldap3::Ldap,
        entry: SearchEntry,
        cfg: &GroupsConfig,
        by_dn: &BTreeMap<String, &Anchor>,
        by_uid: &BTreeMap<String, &Anchor>,
    ) -> Result<RawGroup, SourceError> {
        let dn = entry.dn.clone();
        // Ranged members (AD, over 1500 values) are read to the end first.
        let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut rest = entry.clone();
        rest.attrs.clear();
        for (name, values) in entry.attrs {
            let lower = name.to_ascii_lowercase();
            let base = range_of(&lower).map(|(b, _, _)| b.to_string());
            match base {
                Some(b) if MEMBER_ATTRS.contains(&b.as_str()) => {
                    let mut ranges = LdapRanges {
                        reader: groups_reader,
                        ldap: &mut *ldap,
                        dn: &dn,
                    };
                    let all = read_ranged((lower, values), &mut ranges)
                        .await
                        .map_err(|e| with_dn(e, &dn))?;
                    members.entry(b).or_default().extend(all);
                }
                _ if MEMBER_ATTRS.contains(&lower.as_str()) => {
                    members.entry(lower).or_default().extend(values);
                }
                _ => {
                    rest.attrs.insert(name, values);
                }
            }
        }
        let as_user = groups_reader.user(rest)?;
        let mut people = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for (attr, values) in &members {
            for v in values {
                if attr == "memberuid" {
                    if let Some(a) = by_uid.get(&v.trim().to_lowercase()) {
                        people.insert((*a).clone());
                    }
                    continue;
                }
                // uniqueMember may carry an optional `#'0101'B` unique id after the DN.
                let dn_part = match (attr.as_str(), v.rsplit_once('#')) {
                    ("uniquemember", Some((d, uid))) if uid.ends_with("'B") => d,
                    _ => v.as_str(),
                };
                let key = normal_dn(dn_part);
                match by_dn.get(&key) {
                    Some(a) => {
                        people.insert((*a).clone());
                    }
                    None => {
                        groups.insert(key);
                    }
                }
            }
        }
        Ok(RawGroup {
            key: normal_dn(&dn),
            anchor: as_user.anchor.clone(),
            locator: dn,
            name: cfg.name.render(&as_user),
            people,
            groups,
        })
    }
}

/// Further ranges of a group's member attribute: base searches of the group.
struct LdapRanges<'a> {
    reader: &'a LdapReader,
    ldap: &'a mut ldap3::Ldap,
    dn: &'a str,
}

impl Ranges for LdapRanges<'_> {
    async fn fetch(&mut self, attr: String) -> Result<Option<(String, Vec<String>)>, SourceError> {
        more_range(self.reader, self.ldap, self.dn, attr).await
    }
}

async fn more_range(
    reader: &LdapReader,
    ldap: &mut ldap3::Ldap,
    dn: &str,
    attr: String,
) -> Result<Option<(String, Vec<String>)>, SourceError> {
    let search = Search {
        base: dn,
        scope: Scope::Base,
        filter: "(objectClass=*)",
        attrs: vec![attr.clone()],
        controls: Vec::new(),
    };
    let entries = reader.paged_search(ldap, search).await?;
    let wanted = attr.split(';').next().unwrap_or_default().to_string();
    Ok(entries.into_iter().next().and_then(|e| {
        e.attrs.into_iter().find(|(n, _)| {
            let n = n.to_ascii_lowercase();
            range_of(&n).is_some_and(|(b, _, _)| b == wanted) || n == wanted
        })
    }))
}

fn with_dn(e: SourceError, dn: &str) -> SourceError {
    match e {
        SourceError::BadEntry { dn: d, detail } if d.is_empty() => SourceError::BadEntry {
            dn: dn.to_string(),
            detail,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normal_dn("uid=Ada, ou=People,DC=example, dc=org"),
            "uid=ada,ou=people,dc=example,dc=org"
        );
        assert_eq!(normal_dn("cn=a\\, b,dc=x"), "cn=a\\, b,dc=x");
        // Escapes written as hex, as a character, or multi-byte: one DN.
        assert_eq!(normal_dn("cn=A\\2C B,dc=x"), "cn=a\\, b,dc=x");
        assert_eq!(
            normal_dn("CN=Smith\\, J \\\"JJ\\\" \\2B\\3C\\3e\\3B\\5C,DC=x"),
            normal_dn("cn=smith\\, j \\\"jj\\\" \\+\\<\\>\\;\\\\,dc=x")
        );
        assert_eq!(normal_dn("cn=Ren\\C3\\A9,dc=x"), "cn=rené,dc=x");
        assert_eq!(normal_dn("cn=Ren\\C3\\A9,dc=x"), normal_dn("cn=René,dc=x"));
    }

    #[test]
    fn range_options_are_parsed() {
        assert_eq!(
            range_of("member;range=0-1499"),
            Some(("member", 0, Some(1499)))
        );
        assert_eq!(
            range_of("member;range=1500-*"),
            Some(("member", 1500, None))
        );
        assert_eq!(range_of("member"), None);
        assert_eq!(range_of("member;binary"), None);
    }

    fn block<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A group of `n` members served 1500 at a time, as AD does.
    fn served(n: usize, attr: &str) -> Option<(String, Vec<String>)> {
        let (_, lo, _) = range_of(attr).unwrap();
        let lo = lo as usize;
        let hi = (lo + 1500).min(n);
        let values = (lo..hi).map(|i| format!("cn=u{i},dc=x")).collect();
        let name = if hi == n {
            format!("member;range={lo}-*")
        } else {
            format!("member;range={lo}-{}", hi - 1)
        };
        Some((name, values))
    }

    /// Answers range requests with `answer`, remembering what was asked.
    struct Fake<F: FnMut(&str) -> Option<(String, Vec<String>)>> {
        answer: F,
        asked: Vec<String>,
    }

    impl<F: FnMut(&str) -> Option<(String, Vec<String>)>> Ranges for Fake<F> {
        async fn fetch(
            &mut self,
            attr: String,
        ) -> Result<Option<(String, Vec<String>)>, SourceError> {
            self.asked.push(attr.clone());
            Ok((self.answer)(&attr))
        }
    }

    #[test]
    fn a_ranged_member_list_is_read_whole() {
        let first = served(4000, "member;range=0-*").unwrap();
        let mut fake = Fake {
            answer: |attr: &str| served(4000, attr),
            asked: Vec::new(),
        };
        let all = block(read_ranged(first, &mut fake)).unwrap();
        assert_eq!(all.len(), 4000);
        assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 4000);
        assert_eq!(
            fake.asked,
            vec!["member;range=1500-*", "member;range=3000-*"]
        );
    }

    #[test]
    fn an_unranged_list_needs_no_more_requests() {
        let mut fake = Fake {
            answer: |_: &str| None,
            asked: Vec::new(),
        };
        let all = block(read_ranged(
            ("member".into(), vec!["cn=a".into()]),
            &mut fake,
        ))
        .unwrap();
        assert_eq!(all, vec!["cn=a".to_string()]);
        assert!(fake.asked.is_empty());
    }

    #[test]
    fn a_server_that_does_not_move_on_fails_the_read() {
        let first = ("member;range=0-1".to_string(), vec!["a".into(), "b".into()]);
        let mut fake = Fake {
            answer: |_: &str| Some(("member;range=0-1".to_string(), vec!["a".into(), "b".into()])),
            asked: Vec::new(),
        };
        let err = block(read_ranged(first, &mut fake)).unwrap_err();
        assert!(
            err.to_string().contains("asked for member;range=2-*"),
            "{err}"
        );
    }
}
