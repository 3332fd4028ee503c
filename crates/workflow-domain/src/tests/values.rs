//! Parsing at the edge: what each value accepts, how it normalises, which field an error names.

use super::*;

#[test]
fn text_is_trimmed_and_bounded_in_characters() {
    assert_eq!(
        Title::parse("title", "  出張申請  ").unwrap().as_str(),
        "出張申請"
    );
    assert_eq!(Title::parse("title", "   ").unwrap_err().field, "title");
    assert!(Title::parse("title", &"あ".repeat(201)).is_err());
    assert!(
        Title::parse("title", &"あ".repeat(200)).is_ok(),
        "limits count characters, not bytes"
    );
    assert!(Title::parse("title", "bell\u{7}").is_err());
    assert!(Reason::parse("reason", "").is_err());
    assert!(Comment::parse("comment", "").is_ok());
    assert!(DefinitionName::parse("name", "").is_err());
    assert!(DefinitionName::parse("name", &"あ".repeat(200)).is_ok());
    assert!(DefinitionName::parse("name", &"あ".repeat(201)).is_err());
    assert_eq!(CommentBody::parse("body", " ").unwrap_err().field, "body");
    assert!(CommentBody::parse("body", "一行目\n二行目").is_ok());
    assert!(CommentBody::parse("body", &"あ".repeat(4_000)).is_ok());
    assert!(CommentBody::parse("body", &"あ".repeat(4_001)).is_err());
}

#[test]
fn text_refuses_characters_that_hide_or_reorder_what_is_shown() {
    for hidden in [
        "請求書\u{202E}fdp.exe", // right-to-left override
        "\u{202A}embedded",
        "\u{2066}isolated\u{2069}",
        "出張\u{200B}申請", // zero-width space
        "\u{FEFF}bom",
        "a\u{2028}b", // line separator
        "\u{200F}mark",
        "tag\u{E0041}",
    ] {
        let error = Title::parse("title", hidden).unwrap_err();
        assert_eq!(error.field, "title", "{hidden:?}");
        assert!(UserId::parse("sub", hidden).is_err(), "{hidden:?}");
        assert!(CommentBody::parse("body", hidden).is_err(), "{hidden:?}");
    }
    // Joiners that scripts and emoji need stay.
    assert!(Title::parse("title", "家族 👩\u{200D}👩\u{200D}👧").is_ok());
    assert!(Title::parse("title", "می\u{200C}خواهم").is_ok());
}

#[test]
fn dates_stay_within_four_digit_years() {
    assert_eq!(
        parse_date("due_date", "2025-04-30").unwrap(),
        date(2025, 4, 30)
    );
    assert_eq!(parse_date("due_date", "0001-01-01").unwrap(), date(1, 1, 1));
    assert_eq!(
        parse_date("due_date", "9999-12-31").unwrap(),
        date(9999, 12, 31)
    );
    for out_of_range in ["-5000-01-01", "0000-12-31", "+10000-01-01"] {
        let error = parse_date("due_date", out_of_range).unwrap_err();
        assert_eq!(error.field, "due_date", "{out_of_range}");
    }
    for malformed in ["2025-02-30", "30/04/2025", ""] {
        assert_eq!(
            parse_date("due_date", malformed).unwrap_err().message,
            "must be a date as YYYY-MM-DD",
            "{malformed}"
        );
    }
}

#[test]
fn identifiers_and_ids() {
    assert!(StepNo::parse("step", 0).is_err());
    assert_eq!(step(u32::MAX).next(), step(u32::MAX), "never overflows");
    assert!(UserId::parse("sub", "has space").is_err());
    assert!(UserId::parse("sub", &"u".repeat(128)).is_ok());
    assert!(UserId::parse("sub", &"u".repeat(129)).is_err());
    assert!(Role::parse("roles", &"r".repeat(64)).is_ok());
    assert_eq!(
        Role::parse("roles[1]", &"r".repeat(65)).unwrap_err(),
        ValidationError::new("roles[1]", "must be at most 64 bytes")
    );
    assert!(Role::parse("roles", "").is_err());
    assert!(Role::parse("roles", "line\nbreak").is_err());
    assert!(Role::parse("roles", "経理").is_ok());

    let raw = "0195f2a4-6c1e-7d3a-9b8f-2e4d6a8c0b1e";
    assert_eq!(
        DefinitionId::parse("definition_id", raw)
            .unwrap()
            .to_string(),
        raw
    );
    assert_eq!(
        WorkflowId::parse("workflow_id", raw).unwrap().to_string(),
        raw
    );
    assert_eq!(
        DefinitionId::parse("definition_id", "nope")
            .unwrap_err()
            .field,
        "definition_id"
    );
    assert_eq!(Priority::parse("URGENT"), Some(Priority::Urgent));
    assert_eq!(Priority::parse("urgent"), None);
}

#[test]
fn roles_of_an_actor() {
    let mia = actor("mia:manager,admin");
    assert!(mia.holds(&role("manager")));
    assert!(!mia.holds(&role("Manager")), "roles are case-sensitive");
    assert!(mia.is_admin());
    assert!(!mia.is_system());
    assert!(actor(WATCHER).is_system());
    assert!(!actor(WATCHER).is_admin());
    assert!(!actor("bob").is_admin());
}

#[test]
fn routes_name_the_offending_step_field() {
    let user = |id| RawStep {
        approver: Some(RawApprover::User(id)),
        sla_hours: None,
    };
    let parse = |steps: Vec<RawStep<'static>>| {
        Route::parse("route", steps, |i, f| format!("route[{i}].{f}"))
    };
    let cases: Vec<(&str, Vec<RawStep<'static>>, &str)> = vec![
        ("no steps", vec![], "route"),
        ("21 steps", vec![user("bob"); 21], "route"),
        (
            "an empty user",
            vec![user("bob"), user("")],
            "route[1].approver",
        ),
        (
            "an invalid role",
            vec![RawStep {
                approver: Some(RawApprover::Role("two words")),
                sla_hours: None,
            }],
            "route[0].approver",
        ),
        (
            "no approver",
            vec![
                user("bob"),
                RawStep {
                    approver: None,
                    sla_hours: Some(4),
                },
            ],
            "route[1].approver",
        ),
        (
            "an SLA of zero",
            vec![
                user("bob"),
                user("carol"),
                RawStep {
                    sla_hours: Some(0),
                    ..user("dave")
                },
            ],
            "route[2].sla_hours",
        ),
        (
            "an SLA over a year",
            vec![RawStep {
                sla_hours: Some(8_761),
                ..user("dave")
            }],
            "route[0].sla_hours",
        ),
    ];
    for (case, steps, field) in cases {
        assert_eq!(parse(steps).unwrap_err().field, field, "{case}");
    }

    let endless = Route::parse("route", std::iter::repeat(user("bob")), |i, f| {
        format!("route[{i}].{f}")
    });
    assert_eq!(
        endless.unwrap_err().field,
        "route",
        "an endless list is refused"
    );

    let ok = route(&["bob/1", "@manager/8760", "carol"]);
    assert_eq!(ok.len(), 3);
    assert_eq!(
        ok.steps().map(|(n, _)| n.get()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        ok.spec(step(2)),
        Some(&StepSpec {
            approver: Approver::Role(role("manager")),
            sla_hours: Some(SlaHours::parse("sla", 8_760).unwrap()),
        })
    );
    assert_eq!(ok.spec(step(4)), None);
    assert_eq!(route(&["bob"; 20]).len(), 20);
}

#[test]
fn an_sla_sets_the_deadline() {
    let sla = SlaHours::parse("sla", 36).unwrap();
    assert_eq!(sla.get(), 36);
    assert_eq!(sla.deadline(t0()), Some(hours_after_t0(36)));
    assert_eq!(
        sla.deadline(DateTime::<Utc>::MAX_UTC),
        None,
        "the end of time has no deadline, and no panic"
    );
}

#[test]
fn attachments_are_checked_field_by_field() {
    let good = RawAttachment {
        file_name: "見積書.pdf",
        media_type: "application/pdf",
        size_bytes: 52_431,
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        storage_uri: "s3://ringiflow/acme/9f86",
    };
    let parse = |raw| Attachment::parse(raw, |f| format!("attachment.{f}"));
    let long_name = format!("{}.pdf", "あ".repeat(251));
    let too_long_name = format!("{}.pdf", "あ".repeat(252));
    let long_uri = format!("s3://b/{}", "k".repeat(2_041));
    let too_long_uri = format!("s3://b/{}", "k".repeat(2_042));
    let upper_sha = good.sha256.to_uppercase();
    let bad_sha = good.sha256.replace('9', "g");
    // (case, the raw attachment, the field named by the error, or None if accepted)
    let cases: Vec<(&str, RawAttachment<'_>, Option<&str>)> = vec![
        ("a good attachment", good, None),
        (
            "an empty file name",
            RawAttachment {
                file_name: "",
                ..good
            },
            Some("file_name"),
        ),
        (
            "a 255-character file name",
            RawAttachment {
                file_name: &long_name,
                ..good
            },
            None,
        ),
        (
            "a 256-character file name",
            RawAttachment {
                file_name: &too_long_name,
                ..good
            },
            Some("file_name"),
        ),
        (
            "a path",
            RawAttachment {
                file_name: "../etc/passwd",
                ..good
            },
            Some("file_name"),
        ),
        (
            "a Windows path",
            RawAttachment {
                file_name: "C:\\a.pdf",
                ..good
            },
            Some("file_name"),
        ),
        (
            "the current directory",
            RawAttachment {
                file_name: ".",
                ..good
            },
            Some("file_name"),
        ),
        (
            "the parent directory",
            RawAttachment {
                file_name: "..",
                ..good
            },
            Some("file_name"),
        ),
        (
            "a control character",
            RawAttachment {
                file_name: "a\u{0}.pdf",
                ..good
            },
            Some("file_name"),
        ),
        (
            "dots inside a name",
            RawAttachment {
                file_name: "..hidden..pdf",
                ..good
            },
            None,
        ),
        (
            "a media type without subtype",
            RawAttachment {
                media_type: "application",
                ..good
            },
            Some("media_type"),
        ),
        (
            "an empty subtype",
            RawAttachment {
                media_type: "application/",
                ..good
            },
            Some("media_type"),
        ),
        (
            "an empty type",
            RawAttachment {
                media_type: "/pdf",
                ..good
            },
            Some("media_type"),
        ),
        (
            "parameters",
            RawAttachment {
                media_type: "text/plain; charset=utf-8",
                ..good
            },
            Some("media_type"),
        ),
        (
            "three parts",
            RawAttachment {
                media_type: "a/b/c",
                ..good
            },
            Some("media_type"),
        ),
        (
            "a name starting with a symbol",
            RawAttachment {
                media_type: "application/+json",
                ..good
            },
            Some("media_type"),
        ),
        (
            "symbols RFC 6838 allows",
            RawAttachment {
                media_type: "application/vnd.ms-excel+xml",
                ..good
            },
            None,
        ),
        (
            "an empty file",
            RawAttachment {
                size_bytes: 0,
                ..good
            },
            Some("size_bytes"),
        ),
        (
            "exactly 1 GiB",
            RawAttachment {
                size_bytes: 1 << 30,
                ..good
            },
            None,
        ),
        (
            "over 1 GiB",
            RawAttachment {
                size_bytes: (1 << 30) + 1,
                ..good
            },
            Some("size_bytes"),
        ),
        (
            "a short digest",
            RawAttachment {
                sha256: &good.sha256[..63],
                ..good
            },
            Some("sha256"),
        ),
        (
            "a non-hex digest",
            RawAttachment {
                sha256: &bad_sha,
                ..good
            },
            Some("sha256"),
        ),
        (
            "an uppercase digest",
            RawAttachment {
                sha256: &upper_sha,
                ..good
            },
            None,
        ),
        (
            "no scheme",
            RawAttachment {
                storage_uri: "bucket/key",
                ..good
            },
            Some("storage_uri"),
        ),
        (
            "an uppercase scheme",
            RawAttachment {
                storage_uri: "S3://bucket/key",
                ..good
            },
            Some("storage_uri"),
        ),
        (
            "a scheme starting with a digit",
            RawAttachment {
                storage_uri: "3s://bucket/key",
                ..good
            },
            Some("storage_uri"),
        ),
        (
            "nothing after the scheme",
            RawAttachment {
                storage_uri: "s3://",
                ..good
            },
            Some("storage_uri"),
        ),
        (
            "whitespace",
            RawAttachment {
                storage_uri: "s3://bucket/a key",
                ..good
            },
            Some("storage_uri"),
        ),
        (
            "a 2048-byte URI",
            RawAttachment {
                storage_uri: &long_uri,
                ..good
            },
            None,
        ),
        (
            "a 2049-byte URI",
            RawAttachment {
                storage_uri: &too_long_uri,
                ..good
            },
            Some("storage_uri"),
        ),
        (
            "scheme symbols",
            RawAttachment {
                storage_uri: "git+ssh://host/repo",
                ..good
            },
            None,
        ),
    ];
    for (case, raw, field) in cases {
        let outcome = parse(raw).map_err(|error| error.field);
        let expected = field.map(|f| format!("attachment.{f}"));
        assert_eq!(outcome.err(), expected, "{case}");
    }

    let normalised = parse(RawAttachment {
        media_type: "Application/PDF",
        sha256: &upper_sha,
        ..good
    })
    .unwrap();
    assert_eq!(normalised.media_type(), "application/pdf");
    assert_eq!(normalised.sha256(), good.sha256);
    assert_eq!(normalised.file_name(), "見積書.pdf");
    assert_eq!(normalised.size_bytes(), 52_431);
    assert_eq!(normalised.storage_uri(), "s3://ringiflow/acme/9f86");
    assert_eq!(normalised, parse(good).unwrap());
}
