//! Active Directory's binary attributes as text: `objectGUID` (and other GUIDs) in
//! Microsoft's byte order, SIDs as `S-1-5-...`; and the binary attributes with no text form,
//! which a template may not read.

use std::collections::BTreeMap;

use crate::model::Attrs;

/// AD's binary ids, in the text forms people map (`{objectGUID}`, `{objectSid}`): added to
/// `attrs`, kept in `bin` (the anchor reads it); a malformed one is a problem.
pub(super) fn render_binary_ids(
    attrs: &mut Attrs,
    bin: &mut BTreeMap<String, Vec<Vec<u8>>>,
    problems: &mut Vec<String>,
) {
    for (name, render) in BINARY_TEXT {
        let raw = bin.remove(*name).or_else(|| {
            attrs
                .remove(name)
                .map(|v| v.into_iter().map(String::into_bytes).collect())
        });
        if let Some(values) = raw {
            let text: Option<Vec<String>> = values.iter().map(|b| render(b)).collect();
            match text {
                Some(t) => attrs.insert(name, t),
                None => problems.push(format!("attribute {name} is not a valid {name}")),
            }
            bin.insert((*name).to_string(), values);
        }
    }
}

/// AD's binary attributes that idsync renders as text for templates, by lower-case name:
/// GUIDs in Microsoft's text form, SIDs as `S-1-5-...`.
pub(super) type Render = fn(&[u8]) -> Option<String>;
pub(super) const BINARY_TEXT: &[(&str, Render)] = &[
    ("objectguid", guid_text),
    ("ms-ds-consistencyguid", guid_text),
    ("msexchmailboxguid", guid_text),
    ("objectsid", sid_text),
    ("sidhistory", sid_text),
];

/// Binary attributes with no text form: a template that reads one is a config error.
const UNRENDERABLE: &[&str] = &[
    "thumbnailphoto",
    "jpegphoto",
    "photo",
    "usercertificate",
    "usersmimecertificate",
    "cacertificate",
    "ntsecuritydescriptor",
    "logonhours",
    "unicodepwd",
    "userpassword",
    "ntpwdhistory",
    "lmpwdhistory",
    "supplementalcredentials",
];

/// True for an attribute a template cannot render (binary, with no text form).
pub fn is_unrenderable(attr: &str) -> bool {
    let lower = attr.to_ascii_lowercase();
    let name = lower.split(';').next().unwrap_or_default();
    UNRENDERABLE.contains(&name)
}

/// A binary SID -> `S-1-5-21-...` (MS-DTYP 2.4.2.2: revision, sub-authority count, a 48-bit
/// big-endian identifier authority, then little-endian 32-bit sub-authorities).
pub fn sid_text(b: &[u8]) -> Option<String> {
    let (&revision, rest) = b.split_first()?;
    let (&count, rest) = rest.split_first()?;
    if rest.len() != 6 + 4 * count as usize {
        return None;
    }
    let authority = rest[..6].iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
    let mut out = format!("S-{revision}-{authority}");
    for sub in rest[6..].chunks_exact(4) {
        let v = u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]]);
        out.push_str(&format!("-{v}"));
    }
    Some(out)
}

/// AD objectGUID bytes -> the canonical `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` form
/// (the first three groups are little-endian).
pub fn guid_text(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_guid_renders_like_windows_does() {
        // Bytes of {2B1A3C4D-6E5F-7A8B-9C0D-1E2F3A4B5C6D} as AD stores them.
        let bytes = [
            0x4d, 0x3c, 0x1a, 0x2b, 0x5f, 0x6e, 0x8b, 0x7a, 0x9c, 0x0d, 0x1e, 0x2f, 0x3a, 0x4b,
            0x5c, 0x6d,
        ];
        assert_eq!(
            guid_text(&bytes).unwrap(),
            "2b1a3c4d-6e5f-7a8b-9c0d-1e2f3a4b5c6d"
        );
        assert!(guid_text(&bytes[..15]).is_none());
    }

    #[test]
    fn object_sid_renders_in_its_s_1_5_form() {
        // S-1-5-21-1004336348-1177238915-682003330-512 (Domain Admins of a sample domain).
        let mut b = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1004336348, 1177238915, 682003330, 512] {
            b.extend_from_slice(&sub.to_le_bytes());
        }
        assert_eq!(
            sid_text(&b).unwrap(),
            "S-1-5-21-1004336348-1177238915-682003330-512"
        );
        assert!(sid_text(&b[..b.len() - 1]).is_none());
    }
}
