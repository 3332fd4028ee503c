//! Parsing at the edge: what each value accepts, how it normalises, which field an error names.

use super::*;

#[test]
fn cve_ids() {
    let accepted = [
        ("CVE-2021-44228", "CVE-2021-44228"),
        ("CVE-2014-0160", "CVE-2014-0160"),
        ("CVE-1999-0001", "CVE-1999-0001"),
        ("CVE-9999-9999", "CVE-9999-9999"),
        ("CVE-2024-1234567", "CVE-2024-1234567"),
        (
            "CVE-2024-1234567890123456789",
            "CVE-2024-1234567890123456789",
        ),
        // The prefix in any case, stored uppercase.
        ("cve-2021-44228", "CVE-2021-44228"),
        ("Cve-2021-44228", "CVE-2021-44228"),
    ];
    for (raw, stored) in accepted {
        let id = CveId::parse("cve", raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(id.as_str(), stored);
        assert_eq!(id.to_string(), stored);
    }
    assert_eq!(cve("cve-2021-44228"), cve("CVE-2021-44228"));

    let refused = [
        ("", "must be a CVE id like CVE-2021-44228"),
        ("CVE", "must be a CVE id like CVE-2021-44228"),
        ("CVE-2021", "must be a CVE id like CVE-2021-44228"),
        ("CVE_2021_44228", "must be a CVE id like CVE-2021-44228"),
        ("CVX-2021-44228", "must be a CVE id like CVE-2021-44228"),
        ("CVE-21-44228", "must be a CVE id like CVE-2021-44228"),
        ("CVE-02021-44228", "must be a CVE id like CVE-2021-44228"),
        ("CVE-２０２１-44228", "must be a CVE id like CVE-2021-44228"),
        (" CVE-2021-44228", "must be a CVE id like CVE-2021-44228"),
        (
            "CVE-2021-",
            "must end in a sequence number of 4 to 19 digits",
        ),
        (
            "CVE-2021-123",
            "must end in a sequence number of 4 to 19 digits",
        ),
        (
            "CVE-2021-12345678901234567890",
            "must end in a sequence number of 4 to 19 digits",
        ),
        (
            "CVE-2021-4422a",
            "must end in a sequence number of 4 to 19 digits",
        ),
        (
            "CVE-2021-44228 ",
            "must end in a sequence number of 4 to 19 digits",
        ),
        (
            "CVE-2021-44228-1",
            "must end in a sequence number of 4 to 19 digits",
        ),
        (
            "CVE-2021-４４２２８",
            "must end in a sequence number of 4 to 19 digits",
        ),
        (
            "CVE-2021-044228",
            "a sequence number longer than four digits must not start with 0",
        ),
        ("CVE-1998-0001", "must not be from before 1999"),
        ("CVE-0000-0001", "must not be from before 1999"),
    ];
    for (raw, message) in refused {
        assert_eq!(
            CveId::parse("findings[2].cve", raw),
            Err(ValidationError::new("findings[2].cve", message)),
            "{raw:?}"
        );
    }
}

#[test]
fn cvss_scores() {
    for (raw, tenths, shown) in [
        (0.0, 0, "0.0"),
        (-0.0, 0, "0.0"),
        (0.1, 1, "0.1"),
        (5.0, 50, "5.0"),
        (7.0, 70, "7.0"),
        (9.8, 98, "9.8"),
        (10.0, 100, "10.0"),
    ] {
        let score = Cvss::parse("cvss", raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
        assert_eq!(score.tenths(), tenths, "{raw}");
        assert_eq!(score.to_string(), shown, "{raw}");
        assert_eq!(Cvss::from_tenths("cvss", u32::from(tenths)), Ok(score));
    }
    let out_of_range = "must be between 0.0 and 10.0";
    let decimals = "must have at most one decimal";
    for (raw, message) in [
        (f64::NAN, "must be a number"),
        (f64::INFINITY, "must be a number"),
        (f64::NEG_INFINITY, "must be a number"),
        (-0.1, out_of_range),
        (10.1, out_of_range),
        (100.0, out_of_range),
        (9.85, decimals),
        (9.81, decimals),
        (0.05, decimals),
        (0.1 + 0.2, decimals),
        (f64::from(9.8f32), decimals),
        (f64::MIN_POSITIVE, decimals),
    ] {
        assert_eq!(
            Cvss::parse("cvss", raw),
            Err(ValidationError::new("cvss", message)),
            "{raw}"
        );
    }
    assert!(Cvss::from_tenths("cvss", 101).is_err());
    assert!(Cvss::from_tenths("cvss", 256).is_err());
    assert!(Cvss::from_tenths("cvss", u32::MAX).is_err());
    assert!(cvss(9.0) > cvss(8.9), "scores compare as numbers");
}

#[test]
fn every_cvss_score_reads_back_exactly_from_its_json() {
    for tenths in 0..=100u32 {
        let score = Cvss::from_tenths("cvss", tenths).unwrap();
        let json = serde_json::to_string(&score).unwrap();
        assert_eq!(json.parse::<f64>().unwrap(), f64::from(tenths) / 10.0);
        assert_eq!(Cvss::parse("cvss", json.parse().unwrap()), Ok(score));
        assert_eq!(serde_json::from_str::<Cvss>(&json).unwrap(), score);
    }
    assert_eq!(serde_json::to_string(&cvss(9.8)).unwrap(), "9.8");
    assert_eq!(serde_json::to_string(&cvss(10.0)).unwrap(), "10.0");
    assert_eq!(serde_json::from_str::<Cvss>("10").unwrap(), cvss(10.0));
    assert!(serde_json::from_str::<Cvss>("-1.0").is_err());
    assert!(serde_json::from_str::<Cvss>("\"9.8\"").is_err());
}

#[test]
fn severities_are_ordered_and_spelled_as_on_the_wire() {
    assert!(Severity::Low < Severity::Medium);
    assert!(Severity::Medium < Severity::High);
    assert!(Severity::High < Severity::Critical);
    for severity in Severity::ALL {
        assert_eq!(Severity::parse(severity.as_str()), Some(*severity));
    }
    assert_eq!(Severity::parse("critical"), None);
}

#[test]
fn labels_round_trip_through_their_wire_spelling() {
    fn check<T: Copy + PartialEq + Debug + serde::Serialize>(
        all: &[T],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Option<T>,
        expected: &[&str],
    ) {
        let spelled: Vec<_> = all.iter().map(|label| as_str(*label)).collect();
        assert_eq!(spelled, expected);
        for label in all {
            assert_eq!(parse(as_str(*label)), Some(*label));
            assert_eq!(
                serde_json::to_value(label).unwrap(),
                serde_json::json!(as_str(*label))
            );
            assert_eq!(parse(&as_str(*label).to_lowercase()), None);
        }
        assert_eq!(parse(""), None);
    }
    check(
        Environment::ALL,
        Environment::as_str,
        Environment::parse,
        &["PRODUCTION", "STAGING", "DEVELOPMENT", "TEST"],
    );
    check(
        TaskPriority::ALL,
        TaskPriority::as_str,
        TaskPriority::parse,
        &["LOW", "MEDIUM", "HIGH", "URGENT"],
    );
    check(
        TaskKind::ALL,
        TaskKind::as_str,
        TaskKind::parse,
        &["SCAN_REVIEW", "REMEDIATION"],
    );
    check(
        TaskStatus::ALL,
        TaskStatus::as_str,
        TaskStatus::parse,
        &["OPEN", "ASSIGNED", "COMPLETED"],
    );
    check(
        ScanTrigger::ALL,
        ScanTrigger::as_str,
        ScanTrigger::parse,
        &["REGISTERED", "PACKAGES_UPDATED"],
    );
    check(
        Severity::ALL,
        Severity::as_str,
        Severity::parse,
        &["LOW", "MEDIUM", "HIGH", "CRITICAL"],
    );
    assert_eq!(Environment::Staging.to_string(), "STAGING");
}

fn parse_packages(list: &[(&str, &str)]) -> Result<Packages, ValidationError> {
    Packages::parse(
        "packages",
        list.iter()
            .map(|&(name, version)| RawPackage { name, version }),
        |i, f| format!("packages[{i}].{f}"),
    )
}

#[test]
fn packages_name_the_offending_entry_and_field() {
    let long_name = "n".repeat(214);
    let too_long_name = "n".repeat(215);
    let long_version = "1".repeat(64);
    let too_long_version = "1".repeat(65);
    /// (case, the packages as sent, the field at fault, why)
    type Row<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Row> = vec![
        (
            "an empty name",
            vec![("zlib", "1.2.11"), ("", "1.0")],
            "packages[1].name",
            "must not be empty",
        ),
        (
            "an empty version",
            vec![("zlib", "")],
            "packages[0].version",
            "must not be empty",
        ),
        (
            "a name with a space",
            vec![("zlib", "1"), ("open ssl", "3")],
            "packages[1].name",
            "must not contain whitespace",
        ),
        (
            "a version with a hidden character",
            vec![("zlib", "1.2\u{200B}.11")],
            "packages[0].version",
            "must not contain invisible or text-direction characters",
        ),
        (
            "a name past npm's limit",
            vec![(too_long_name.as_str(), "1")],
            "packages[0].name",
            "must be at most 214 bytes",
        ),
        (
            "a version past 64 bytes",
            vec![("zlib", too_long_version.as_str())],
            "packages[0].version",
            "must be at most 64 bytes",
        ),
        (
            "a repeated name, named at the repeat",
            vec![
                ("zlib", "1"),
                ("openssl", "3"),
                ("curl", "8"),
                ("zlib", "2"),
            ],
            "packages[3].name",
            "duplicates packages[0].name",
        ),
    ];
    for (case, list, field, message) in cases {
        assert_eq!(
            parse_packages(&list),
            Err(ValidationError::new(field, message)),
            "{case}"
        );
    }
    assert!(parse_packages(&[(long_name.as_str(), long_version.as_str())]).is_ok());
    assert!(
        parse_packages(&[("Zlib", "1"), ("zlib", "1")]).is_ok(),
        "names compare exactly"
    );
    assert!(parse_packages(&[("@babel/core", "7.24.0"), ("org.slf4j:slf4j-api", "2.0.9")]).is_ok());
}

#[test]
fn packages_hold_zero_to_five_hundred() {
    assert_eq!(parse_packages(&[]), Ok(Packages::default()));
    let names: Vec<String> = (0..=Packages::MAX).map(|i| format!("pkg-{i}")).collect();
    let raw = |n: usize| {
        names[..n]
            .iter()
            .map(|name| (name.as_str(), "1.0"))
            .collect::<Vec<_>>()
    };
    assert_eq!(parse_packages(&raw(500)).unwrap().len(), 500);
    assert_eq!(
        parse_packages(&raw(501)),
        Err(ValidationError::new("packages", "has at most 500 packages"))
    );
}

#[test]
fn packages_are_a_set_kept_in_name_order() {
    let sorted = installed();
    let names: Vec<_> = sorted.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["log4j-core", "openssl", "zlib"]);
    assert_eq!(
        sorted,
        packages(&[
            ("zlib", "1.2.11"),
            ("openssl", "3.0.1"),
            ("log4j-core", "2.14.1"),
        ])
    );
    assert_ne!(installed(), patched(), "versions count");
    assert_eq!(
        sorted.get(&package("openssl")).map(|p| p.version.as_str()),
        Some("3.0.1")
    );
    assert!(sorted.contains(&package("zlib")));
    assert!(!sorted.contains(&package("curl")));
    assert_eq!(sorted.len(), 3);
    assert!(!sorted.is_empty());
}

#[test]
fn texts_and_ids() {
    assert_eq!(
        SystemName::parse("name", "  Payroll API ")
            .unwrap()
            .as_str(),
        "Payroll API"
    );
    assert_eq!(SystemName::parse("name", " ").unwrap_err().field, "name");
    assert!(SystemName::parse("name", &"あ".repeat(200)).is_ok());
    assert!(SystemName::parse("name", &"あ".repeat(201)).is_err());
    assert!(SystemName::parse("name", "Pay\u{202E}roll").is_err());
    assert!(TaskTitle::parse("title", &"a".repeat(200)).is_ok());
    assert!(TaskTitle::parse("title", &"a".repeat(201)).is_err());
    assert!(DecommissionReason::parse("reason", "").is_err());
    assert!(DecommissionReason::parse("reason", "moved\nto v2").is_ok());

    assert_eq!(TaskNote::parse_optional("note", None), Ok(None));
    assert_eq!(TaskNote::parse_optional("note", Some("")), Ok(None));
    assert_eq!(TaskNote::parse_optional("note", Some(" \n ")), Ok(None));
    assert_eq!(
        TaskNote::parse_optional("note", Some(" done ")),
        Ok(Some(TaskNote::parse("note", "done").unwrap()))
    );
    assert_eq!(
        TaskNote::parse_optional("note", Some(&"x".repeat(2_001)))
            .unwrap_err()
            .field,
        "note"
    );

    let raw = "0195f2a4-6c1e-7d3a-9b8f-2e4d6a8c0b1e";
    assert_eq!(SystemId::parse("system_id", raw).unwrap().to_string(), raw);
    assert_eq!(ScanId::parse("scan_id", raw).unwrap().to_string(), raw);
    assert_eq!(TaskId::parse("task_id", raw).unwrap().to_string(), raw);
    assert_eq!(
        ScanId::parse("scan_id", "nope").unwrap_err().field,
        "scan_id"
    );
}

#[test]
fn generated_titles_are_cut_to_fit() {
    let short = TaskTitle::generated("  Review  ");
    assert_eq!(short.as_str(), "Review");
    let exact = TaskTitle::generated(&"a".repeat(200));
    assert_eq!(exact.as_str(), "a".repeat(200));
    let long = TaskTitle::generated(&"あ".repeat(300));
    assert_eq!(long.as_str().chars().count(), 200);
    assert!(long.as_str().ends_with("あ…"));
    assert_eq!(TaskTitle::parse("title", long.as_str()), Ok(long));
}

#[test]
fn security_staff_are_administrators_and_holders_of_the_security_role() {
    assert_eq!(SECURITY_ROLE, "security");
    assert!(crate::values::is_security_staff(&actor(SECURITY)));
    assert!(crate::values::is_security_staff(&actor(ADMIN)));
    assert!(crate::values::is_security_staff(&actor(
        "max:auditor,security"
    )));
    assert!(!crate::values::is_security_staff(&actor("sue:Security")));
    assert!(!crate::values::is_security_staff(&actor(PLATFORM)));
    assert!(!crate::values::is_security_staff(&actor(STRANGER)));
}

#[test]
fn errors_map_to_one_code_and_invalid_input_names_its_field() {
    let invalid = BoardError::from(ValidationError::new(
        "packages[2].name",
        "must not be empty",
    ));
    assert_eq!(invalid.code(), ErrorCode::InvalidArgument);
    assert_eq!(invalid.field(), Some("packages[2].name"));
    assert_eq!(invalid.to_string(), "packages[2].name: must not be empty");
    // Every variant with a field is an invalid argument, and every invalid argument has one.
    let all = [
        BoardError::NotFound { aggregate: "task" },
        BoardError::AlreadyExists { aggregate: "task" },
        BoardError::NotOwner { action: "x" },
        BoardError::NotSystem { action: "x" },
        BoardError::NotSecurityStaff { action: "x" },
        BoardError::NotAssignee,
        BoardError::Decommissioned { action: "x" },
        BoardError::AlertAlreadyRaised {
            cve: log4shell(),
            package: package("zlib"),
        },
        BoardError::ScanCompleted { action: "x" },
        BoardError::FindingAlreadyRecorded {
            cve: log4shell(),
            package: package("zlib"),
        },
        BoardError::TaskCompleted { action: "x" },
        BoardError::Unassigned,
        BoardError::PackagesUnchanged,
        BoardError::PackageNotScanned {
            package: package("zlib"),
        },
        BoardError::AlreadyAssigned {
            assignee: uid("sam"),
        },
        invalid,
    ];
    for error in all {
        assert_eq!(
            error.field().is_some(),
            error.code() == ErrorCode::InvalidArgument,
            "{error}"
        );
    }
}
