//! The values the three contexts share: ids, names, packages, CVE ids, CVSS scores and the
//! severities derived from them. Wire input becomes these through `parse` at the edge, so the
//! aggregates only ever see valid values; deserialising recorded history skips the checks (see
//! the kernel's values), except where a value could not be represented at all.

use es_kernel::{identifier_newtype, text_newtype, uuid_newtype, Actor, ValidationError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The role of a tenant's security staff: they record scan findings and assign tasks, as
/// administrators do. Case-sensitive, as the access token spells it (like `Role::ADMIN`).
pub const SECURITY_ROLE: &str = "security";

/// Administrators and security staff: who triages findings and hands out tasks.
pub(crate) fn is_security_staff(actor: &Actor) -> bool {
    actor.is_admin()
        || actor
            .roles
            .iter()
            .any(|role| role.as_str() == SECURITY_ROLE)
}

/// Declares a closed set of labels from one table of variants and their wire spellings, which
/// become the serde names, `as_str`, `parse` and `ALL` alike, so stored JSON, the contracts
/// and the code cannot spell a label differently.
macro_rules! labels {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }

            /// Exactly the wire spelling: case-sensitive, like the contracts' enums.
            pub fn parse(raw: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|label| label.as_str() == raw)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use labels;

uuid_newtype!(
    /// The aggregate id of a system.
    SystemId
);
uuid_newtype!(
    /// The aggregate id of a vulnerability scan.
    ScanId
);
uuid_newtype!(
    /// The aggregate id of a task.
    TaskId
);

text_newtype!(
    /// What people call a system, e.g. `Payroll API`. Trimmed, 1..=200 characters.
    SystemName, min = 1, max = 200
);
text_newtype!(
    /// Why a system was decommissioned. Required: the record outlives everyone's memory of it.
    DecommissionReason, min = 1, max = 2_000
);
text_newtype!(
    /// A task's headline. Trimmed, 1..=200 characters.
    TaskTitle, min = 1, max = 200
);
text_newtype!(
    /// What the assignee says about the finished work. Trimmed, 1..=2,000 characters; a blank
    /// note is no note (see [`TaskNote::parse_optional`]).
    TaskNote, min = 1, max = 2_000
);

impl TaskTitle {
    /// A title the reactions compose from values that were validated already (CVE ids, package
    /// names, ids): cut to [`MAX_CHARS`](Self::MAX_CHARS) with an ellipsis rather than refused,
    /// since a 214-byte package name must still yield a task.
    pub(crate) fn generated(text: &str) -> Self {
        let text = text.trim();
        if text.chars().count() <= Self::MAX_CHARS {
            return Self(text.to_owned());
        }
        let mut cut: String = text.chars().take(Self::MAX_CHARS - 1).collect();
        cut.push('…');
        Self(cut)
    }
}

impl TaskNote {
    /// `None` for absent or blank input, which the contracts cannot tell apart from "no note".
    pub fn parse_optional(field: &str, raw: Option<&str>) -> Result<Option<Self>, ValidationError> {
        match raw {
            Some(raw) if !raw.trim().is_empty() => Self::parse(field, raw).map(Some),
            _ => Ok(None),
        }
    }
}

identifier_newtype!(
    /// A package's name as its ecosystem spells it, e.g. `log4j-core` or `@babel/core`. At most
    /// 214 bytes (npm's limit, the longest of the common ecosystems); compared exactly.
    PackageName, max_bytes = 214
);
identifier_newtype!(
    /// A package's version as its ecosystem spells it, e.g. `2.14.1` or `1.0.0-rc.1+build.5`.
    /// At most 64 bytes; not interpreted.
    PackageVersion, max_bytes = 64
);

/// One installed package. JSON: `{"name":"log4j-core","version":"2.14.1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Package {
    pub name: PackageName,
    pub version: PackageVersion,
}

/// A package as the client sent it, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPackage<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

/// The parts of a package an error can point at. Displays as the snake_case field name, so
/// `|i, f| format!("packages[{i}].{f}")` names e.g. `packages[3].name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageField {
    Name,
    Version,
}

impl std::fmt::Display for PackageField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PackageField::Name => "name",
            PackageField::Version => "version",
        })
    }
}

/// What a system has installed (or a scan looked at): 0..=500 packages with unique names.
/// Kept sorted by name, because the order a client listed them in means nothing: the same
/// packages in another order are the same list, and "unchanged" can be decided by `==`.
/// JSON: an array of [`Package`], sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Packages(Vec<Package>);

impl Packages {
    pub const MAX: usize = 500;

    /// `field` names the list (e.g. `packages`); `package_field(i, part)` names a part of the
    /// (0-based, as sent) `i`th package, e.g. `|i, f| format!("packages[{i}].{f}")`. A repeated
    /// name is refused at the repeat, naming the first: `packages[3].name`, "duplicates
    /// `packages[1].name`". Names are compared exactly (ecosystems disagree on case).
    pub fn parse<'a>(
        field: &str,
        packages: impl IntoIterator<Item = RawPackage<'a>>,
        package_field: impl Fn(usize, PackageField) -> String,
    ) -> Result<Self, ValidationError> {
        let mut first_seen: BTreeMap<PackageName, usize> = BTreeMap::new();
        let mut parsed = Vec::new();
        for (i, raw) in packages.into_iter().enumerate() {
            // Stops at the first package past the limit, so an endless list is not parsed.
            if i == Self::MAX {
                return Err(ValidationError::new(
                    field,
                    format!("has at most {} packages", Self::MAX),
                ));
            }
            let name = PackageName::parse(&package_field(i, PackageField::Name), raw.name)?;
            let version =
                PackageVersion::parse(&package_field(i, PackageField::Version), raw.version)?;
            if let Some(&first) = first_seen.get(&name) {
                return Err(ValidationError::new(
                    package_field(i, PackageField::Name),
                    format!("duplicates {}", package_field(first, PackageField::Name)),
                ));
            }
            first_seen.insert(name.clone(), i);
            parsed.push(Package { name, version });
        }
        parsed.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(Self(parsed))
    }

    /// The package named `name`, if listed.
    pub fn get(&self, name: &PackageName) -> Option<&Package> {
        // A linear search: history is not re-validated, so sortedness is not relied upon.
        self.0.iter().find(|package| package.name == *name)
    }

    pub fn contains(&self, name: &PackageName) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Package> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A CVE id, e.g. `CVE-2021-44228`: `CVE-`, a year from 1999 (the program's first) to 9999,
/// `-`, and a sequence number of 4 to 19 digits (the CVE JSON 5 schema's bounds). The prefix
/// is accepted in any case and stored uppercase, as scanners and people write both; a sequence
/// longer than four digits may not start with `0`, so each id has exactly one spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CveId(String);

impl CveId {
    pub const FIRST_YEAR: u16 = 1999;
    pub const MIN_SEQUENCE_DIGITS: usize = 4;
    pub const MAX_SEQUENCE_DIGITS: usize = 19;

    pub fn parse(field: &str, raw: &str) -> Result<Self, ValidationError> {
        let invalid = |message: &str| ValidationError::new(field, message);
        let malformed = || invalid("must be a CVE id like CVE-2021-44228");
        let mut parts = raw.splitn(3, '-');
        let (Some(prefix), Some(year), Some(sequence)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !prefix.eq_ignore_ascii_case("CVE") || year.len() != 4 || !digits(year) {
            return Err(malformed());
        }
        if !digits(sequence)
            || !(Self::MIN_SEQUENCE_DIGITS..=Self::MAX_SEQUENCE_DIGITS).contains(&sequence.len())
        {
            return Err(invalid("must end in a sequence number of 4 to 19 digits"));
        }
        if sequence.len() > Self::MIN_SEQUENCE_DIGITS && sequence.starts_with('0') {
            return Err(invalid(
                "a sequence number longer than four digits must not start with 0",
            ));
        }
        // Four ASCII digits always parse.
        if !year
            .parse::<u16>()
            .is_ok_and(|year| year >= Self::FIRST_YEAR)
        {
            return Err(invalid("must not be from before 1999"));
        }
        Ok(Self(format!("CVE-{year}-{sequence}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CveId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

labels! {
    /// How bad a vulnerability is, from its CVSS v3 base score: CRITICAL from 9.0, HIGH from
    /// 7.0, MEDIUM from 4.0, LOW below (CVSS's NONE for 0.0 is LOW here: a finding was still
    /// recorded). Ordered from LOW to CRITICAL.
    pub enum Severity {
        Low => "LOW",
        Medium => "MEDIUM",
        High => "HIGH",
        Critical => "CRITICAL",
    }
}

/// A CVSS v3 base score, 0.0..=10.0 with one decimal, held as tenths so comparisons and
/// equality are exact. JSON: the decimal number, e.g. `9.8`; it reads back to the same tenths
/// (serde_json writes the shortest decimal of the double, and the double nearest to `k/10`
/// reads back as that double).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cvss(u8);

impl Cvss {
    pub const MAX_TENTHS: u8 = 100;

    /// Refuses NaN and infinities, scores outside 0.0..=10.0 and more than one decimal (a
    /// value that is not the double nearest to some tenth, e.g. `9.85` or `0.1 + 0.2`).
    /// Note that an `f32` such as `9.8f32` widened to `f64` is not `9.8`: parse wire floats
    /// through their decimal text, or use [`from_tenths`](Self::from_tenths).
    pub fn parse(field: &str, raw: f64) -> Result<Self, ValidationError> {
        if !raw.is_finite() {
            return Err(ValidationError::new(field, "must be a number"));
        }
        if !(0.0..=10.0).contains(&raw) {
            return Err(ValidationError::new(field, "must be between 0.0 and 10.0"));
        }
        let tenths = (raw * 10.0).round();
        if tenths / 10.0 != raw {
            return Err(ValidationError::new(field, "must have at most one decimal"));
        }
        // 0.0..=100.0 after the range check; `as` cannot truncate here.
        Ok(Self(tenths as u8))
    }

    /// A score given in tenths, e.g. `98` for 9.8: 0..=100.
    pub fn from_tenths(field: &str, tenths: u32) -> Result<Self, ValidationError> {
        match u8::try_from(tenths) {
            Ok(tenths) if tenths <= Self::MAX_TENTHS => Ok(Self(tenths)),
            _ => Err(ValidationError::new(field, "must be between 0.0 and 10.0")),
        }
    }

    pub fn tenths(self) -> u8 {
        self.0
    }

    pub fn score(self) -> f64 {
        f64::from(self.0) / 10.0
    }

    pub fn severity(self) -> Severity {
        match self.0 {
            90.. => Severity::Critical,
            70..=89 => Severity::High,
            40..=69 => Severity::Medium,
            _ => Severity::Low,
        }
    }
}

impl std::fmt::Display for Cvss {
    /// `9.8`, `10.0`, `0.0`: always one decimal, as CVSS scores are written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

impl Serialize for Cvss {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.score())
    }
}

impl<'de> Deserialize<'de> for Cvss {
    /// Rounds to the nearest tenth without the range check (history stays readable); refuses
    /// only what tenths in a `u8` cannot hold.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let score = f64::deserialize(deserializer)?;
        let tenths = (score * 10.0).round();
        if !(0.0..=f64::from(u8::MAX)).contains(&tenths) {
            return Err(serde::de::Error::custom(format!(
                "{score} is not a CVSS score"
            )));
        }
        Ok(Self(tenths as u8))
    }
}
