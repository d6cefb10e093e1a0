//! Validated newtypes for everything that comes from a request and ends up in a storage key.
//! Parsing happens once, at the edge; everything inside trusts these types.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an id or a name was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}")]
pub struct IdError {
    pub what: &'static str,
    pub reason: &'static str,
}

fn check_token(
    value: String,
    what: &'static str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<String, IdError> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.len() > max {
        "is too long"
    } else if !value.chars().all(allowed) {
        "contains characters that are not allowed"
    } else {
        return Ok(value);
    };
    Err(IdError { what, reason })
}

/// A validated string: `check` decides, on every way in (parsing and deserializing), what it
/// keeps of a raw string.
macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                $check(value).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Ids checked by [`check_token`]: what errors call them, their longest length, their characters.
macro_rules! string_ids {
    ($($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr;)*) => {$(
        string_type!($(#[$doc])* $name, |v| check_token(v, $what, $max, $allowed));

        impl $name {
            pub fn parse(value: &str) -> Result<Self, IdError> {
                Self::try_from(value.to_owned())
            }
        }
    )*};
}

string_ids! {
    /// The owner of API keys and of everything stored; part of every storage key.
    TenantId, "tenant", 64, |c: char| c.is_ascii_alphanumeric() || "-_".contains(c);
    /// The kind of a parent record: `profile`, `asset`, `project`, `io_showcase`…
    ParentKind, "parent kind", 64, |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    /// The id of a parent record in the user's application (Mongo ids, UUIDs, slugs…).
    ParentId, "parent id", 200, |c: char| c.is_ascii_alphanumeric() || "-_.~@:+=".contains(c);
}

macro_rules! uuid_ids {
    ($($(#[$doc:meta])* $name:ident, $what:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered id (UUIDv7), so ids sort by creation.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub fn parse(value: &str) -> Result<Self, IdError> {
                // Only the hyphenated form: one spelling per id keeps storage keys canonical.
                Uuid::try_parse(value)
                    .ok()
                    .filter(|_| value.len() == 36)
                    .map(Self)
                    .ok_or(IdError { what: $what, reason: "is not a valid UUID" })
            }
            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    )*};
}

uuid_ids! {
    /// An attachment's id.
    AttachmentId, "attachment id";
    /// The id of one stored content of an attachment.
    VersionId, "version id";
}

string_type!(
    /// A file name as shown to users: a base name (directories a browser may send are dropped),
    /// without control characters, at most 255 bytes; read back from storage under these rules.
    /// Never used to build a storage key.
    FileName,
    |v| file_name(v, false)
);

/// Characters that change how a name is displayed without being seen: Unicode's format
/// characters (category Cf: bidirectional overrides and isolates, zero-width characters, the
/// soft hyphen, …) and the line and paragraph separators. `invoice\u{202E}gpj.exe` shows as
/// `invoiceexe.jpg`: a name that lies about its extension.
fn is_invisible_formatting(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F
        | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

impl FileName {
    /// A name a client gives: refused when it is empty, too long, or hides characters.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        file_name(raw.to_owned(), true).map(Self)
    }

    /// The name split at its last dot, unless that starts it (`.bashrc` has no extension).
    fn split(&self) -> Option<(&str, &str)> {
        self.0.rsplit_once('.').filter(|(stem, _)| !stem.is_empty())
    }

    /// The name without its extension: `picture1` for `picture1.jpg`, `.bashrc` for `.bashrc`.
    pub fn stem(&self) -> &str {
        self.split().map_or(&self.0, |(stem, _)| stem)
    }

    /// The extension without its dot, as written (`JPG` stays `JPG`); empty when there is none.
    pub fn extension(&self) -> &str {
        self.split().map_or("", |(_, extension)| extension)
    }
}

/// A file name's rules; a stored one is read back without `strict` (names stored before invisible
/// formatting was refused stay readable).
fn file_name(raw: String, strict: bool) -> Result<String, IdError> {
    // Old browsers send `C:\fakepath\x.png`; only the last path segment is the name.
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(&raw).trim();
    let reason = if base.is_empty() || base == "." || base == ".." {
        "must not be empty"
    } else if base.len() > 255 {
        "is too long (at most 255 bytes)"
    } else if base.chars().any(char::is_control) {
        "contains control characters"
    } else if strict && base.chars().any(is_invisible_formatting) {
        "contains invisible formatting characters (such as a right-to-left override)"
    } else {
        return Ok(base.to_owned());
    };
    Err(IdError {
        what: "file name",
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_ids_accept_real_world_ids_and_refuse_path_tricks() {
        for ok in [
            "59284659d4c650213cc2f3fc",
            "UqFkJDWdw7Sdg7TQZS-J",
            "-23mQQaJiZrjw1MLBEc1",
            "42f64596-c42f-4ba2-8138-cc40188d2a88",
        ] {
            assert!(ParentId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "..%2f", "a b", "x?y", &"a".repeat(201)] {
            assert!(ParentId::parse(bad).is_err(), "{bad}");
        }
        assert!(ParentKind::parse("io_showcase").is_ok());
        assert!(ParentKind::parse("pro/file").is_err());
        assert!(TenantId::parse("acme-1").is_ok());
        assert!(TenantId::parse("acme.1").is_err());
    }

    #[test]
    fn uuid_ids_are_canonical_and_time_ordered() {
        let a = AttachmentId::new();
        let b = AttachmentId::new();
        assert!(a < b);
        assert_eq!(AttachmentId::parse(&a.to_string()), Ok(a));
        assert!(AttachmentId::parse("not-a-uuid").is_err());
        assert!(AttachmentId::parse("42f64596c42f4ba281 38cc40188d2a88").is_err());
        assert!(AttachmentId::parse("{42f64596-c42f-4ba2-8138-cc40188d2a88}").is_err());
    }

    #[test]
    fn file_names_split_and_sanitise() {
        let f = FileName::parse("C:\\fakepath\\picture1.jpg").unwrap();
        assert_eq!(f.as_str(), "picture1.jpg");
        assert_eq!(f.stem(), "picture1");
        assert_eq!(f.extension(), "jpg");
        let f = FileName::parse("archive.tar.gz").unwrap();
        assert_eq!((f.stem(), f.extension()), ("archive.tar", "gz"));
        let f = FileName::parse(".bashrc").unwrap();
        assert_eq!((f.stem(), f.extension()), (".bashrc", ""));
        assert!(FileName::parse("../").is_err());
        assert!(FileName::parse("a\nb.txt").is_err());
        assert!(FileName::parse(&"é".repeat(200)).is_err());
        // Names that hide characters, to fake their extension or look like another.
        for bad in [
            "invoice\u{202E}gpj.exe",
            "a\u{2066}b.txt",
            "zero\u{200B}width.pdf",
            "line\u{2028}sep.txt",
            "bom\u{FEFF}.txt",
            "tag\u{E0041}.txt",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FileName::parse("résumé 日本語 ñ.pdf").is_ok());
        // A name stored before the rule is still read back.
        let old: FileName = serde_json::from_str("\"old\u{202E}txt.exe\"").unwrap();
        assert_eq!(old.extension(), "exe");
    }
}
