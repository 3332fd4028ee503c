//! The System Board's domain values ↔ wire values (`ringiflow.systemboard.v1`), written once
//! for every crate that speaks both: the codecs here, and the board's gRPC services (which
//! parse requests and answer queries with the same mappings).
//!
//! Labels map value for value: the wire enum's value name is its prefix and the domain's
//! spelling (`ENVIRONMENT_` + `PRODUCTION`), which the tests check against the domain's tables.
//! Parsing a wire label refuses UNSPECIFIED and numbers this version does not know, naming the
//! field the caller gives.

use crate::systemboard::v1 as pb;
use system_board::{
    Environment, FindingCounts, Packages, RawPackage, ScanTrigger, Severity, TaskKind,
    TaskPriority, TaskStatus, ValidationError,
};

/// `must be A, B or C`, from the domain's own table of a label's spellings.
fn one_of<L: std::fmt::Display>(labels: &[L]) -> String {
    match labels {
        [] => "must not be set".to_owned(),
        [only] => format!("must be {only}"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(ToString::to_string).collect();
            format!("must be {} or {last}", init.join(", "))
        }
    }
}

/// For each label: `From<domain> for wire` and `parse(field, raw wire i32) -> domain`.
macro_rules! label_mapping {
    ($(#[$doc:meta])* $parse:ident: $domain:ident <=> $wire:ident { $($variant:ident),+ $(,)? }) => {
        impl From<$domain> for pb::$wire {
            fn from(label: $domain) -> Self {
                match label {
                    $( $domain::$variant => pb::$wire::$variant, )+
                }
            }
        }

        $(#[$doc])*
        pub fn $parse(field: &str, raw: i32) -> Result<$domain, ValidationError> {
            match pb::$wire::try_from(raw) {
                $( Ok(pb::$wire::$variant) => Ok($domain::$variant), )+
                Ok(pb::$wire::Unspecified) | Err(_) => {
                    Err(ValidationError::new(field, one_of($domain::ALL)))
                }
            }
        }
    };
}

label_mapping! {
    /// A wire environment (the raw `i32` of the enum field) as the domain's.
    environment: Environment <=> Environment { Production, Staging, Development, Test }
}
label_mapping! {
    /// A wire severity as the domain's. Where a CVSS score comes with it, the caller also checks
    /// that they agree.
    severity: Severity <=> Severity { Low, Medium, High, Critical }
}
label_mapping! {
    /// A wire scan trigger as the domain's.
    scan_trigger: ScanTrigger <=> ScanTrigger { Registered, PackagesUpdated }
}
label_mapping! {
    /// A wire task kind as the domain's.
    task_kind: TaskKind <=> TaskKind { ScanReview, Remediation }
}
label_mapping! {
    /// A wire task priority as the domain's.
    task_priority: TaskPriority <=> TaskPriority { Low, Medium, High, Urgent }
}
label_mapping! {
    /// A wire task status as the domain's (for a filter: no event carries a status).
    task_status: TaskStatus <=> TaskStatus { Open, Assigned, Completed }
}

/// Wire packages as the domain's list, in any order; errors name `<field>` (too many) or
/// `<field>[i].name` / `<field>[i].version`, `i` counting from 0 as sent.
pub fn packages(field: &str, packages: &[pb::Package]) -> Result<Packages, ValidationError> {
    Packages::parse(
        field,
        packages.iter().map(|package| RawPackage {
            name: &package.name,
            version: &package.version,
        }),
        |i, part| format!("{field}[{i}].{part}"),
    )
}

/// The domain's packages on the wire, sorted by name as the domain keeps them.
pub fn packages_to_proto(packages: &Packages) -> Vec<pb::Package> {
    packages
        .iter()
        .map(|package| pb::Package {
            name: package.name.to_string(),
            version: package.version.to_string(),
        })
        .collect()
}

impl From<FindingCounts> for pb::VulnerabilityCounts {
    fn from(counts: FindingCounts) -> Self {
        pb::VulnerabilityCounts {
            critical: counts.critical,
            high: counts.high,
            medium: counts.medium,
            low: counts.low,
        }
    }
}

/// Every count is possible: nothing to refuse.
impl From<pb::VulnerabilityCounts> for FindingCounts {
    fn from(counts: pb::VulnerabilityCounts) -> Self {
        FindingCounts {
            critical: counts.critical,
            high: counts.high,
            medium: counts.medium,
            low: counts.low,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every domain label maps to the wire value spelled `<PREFIX>_<domain spelling>` and back;
    /// UNSPECIFIED and unknown numbers are refused naming the field.
    macro_rules! check_label {
        ($parse:ident, $domain:ident, $wire:ident, $prefix:literal) => {{
            for label in $domain::ALL.iter().copied() {
                let wire = pb::$wire::from(label);
                assert_eq!(
                    wire.as_str_name(),
                    format!("{}_{}", $prefix, label.as_str())
                );
                assert_eq!($parse("f", wire as i32), Ok(label));
            }
            // Every wire value but UNSPECIFIED is some domain label.
            assert_eq!(
                (1..=i32::try_from($domain::ALL.len()).unwrap())
                    .filter(|raw| pb::$wire::try_from(*raw).is_ok())
                    .count(),
                $domain::ALL.len()
            );
            assert!(pb::$wire::try_from($domain::ALL.len() as i32 + 1).is_err());
            let refused = $parse("label", pb::$wire::Unspecified as i32).unwrap_err();
            assert_eq!(refused.field, "label");
            assert!($parse("label", 99).is_err());
        }};
    }

    #[test]
    fn labels_map_value_for_value_and_unspecified_is_refused() {
        check_label!(environment, Environment, Environment, "ENVIRONMENT");
        check_label!(severity, Severity, Severity, "SEVERITY");
        check_label!(scan_trigger, ScanTrigger, ScanTrigger, "SCAN_TRIGGER");
        check_label!(task_kind, TaskKind, TaskKind, "TASK_KIND");
        check_label!(task_priority, TaskPriority, TaskPriority, "TASK_PRIORITY");
        check_label!(task_status, TaskStatus, TaskStatus, "TASK_STATUS");
    }

    #[test]
    fn a_refused_label_lists_what_it_may_be() {
        assert_eq!(
            environment("environment", 0).unwrap_err().message,
            "must be PRODUCTION, STAGING, DEVELOPMENT or TEST"
        );
        assert_eq!(one_of::<&str>(&["A"]), "must be A");
    }

    #[test]
    fn packages_are_sorted_and_bad_ones_name_their_field() {
        let wire = |name: &str, version: &str| pb::Package {
            name: name.into(),
            version: version.into(),
        };
        let parsed = packages(
            "packages",
            &[wire("openssl", "3.0.7"), wire("log4j-core", "2.14.1")],
        )
        .unwrap();
        let back = packages_to_proto(&parsed);
        assert_eq!(
            back,
            vec![wire("log4j-core", "2.14.1"), wire("openssl", "3.0.7")]
        );
        assert_eq!(packages("packages", &back).unwrap(), parsed);
        let field = |list: &[pb::Package]| packages("packages", list).unwrap_err().field;
        assert_eq!(field(&[wire("a", "1"), wire("", "1")]), "packages[1].name");
        assert_eq!(field(&[wire("a", "1 .0")]), "packages[0].version");
        assert_eq!(field(&[wire("a", "1"), wire("a", "2")]), "packages[1].name");
        let too_many: Vec<_> = (0..=Packages::MAX)
            .map(|i| wire(&format!("p{i}"), "1"))
            .collect();
        assert_eq!(field(&too_many), "packages");
    }

    #[test]
    fn counts_round_trip() {
        let counts = FindingCounts {
            critical: 1,
            high: 2,
            medium: 3,
            low: u32::MAX,
        };
        assert_eq!(
            FindingCounts::from(pb::VulnerabilityCounts::from(counts)),
            counts
        );
    }
}
