//! The definition's rules.

use super::*;

type DefinitionAct = Act<DefinitionCommand>;

const ADMIN: &str = "root:admin";

fn def(given: &[DefinitionAct], when: DefinitionAct) -> Result<Vec<DefinitionEvent>, DomainError> {
    run::<Definition>(given, when)
}

fn name(raw: &str) -> DefinitionName {
    DefinitionName::parse("name", raw).unwrap()
}

fn create_definition() -> DefinitionCommand {
    DefinitionCommand::Create {
        name: name("出張申請"),
        route: route(&["@manager/48"]),
    }
}

fn publish(steps: &[&str], new_name: Option<&str>) -> DefinitionCommand {
    DefinitionCommand::PublishVersion {
        route: route(steps),
        name: new_name.map(name),
    }
}

fn created() -> Vec<DefinitionAct> {
    vec![by(ADMIN, create_definition())]
}

fn archived() -> Vec<DefinitionAct> {
    vec![
        by(ADMIN, create_definition()),
        by(ADMIN, DefinitionCommand::Archive),
    ]
}

#[test]
fn only_administrators_manage_definitions() {
    let commands = [
        create_definition(),
        publish(&["bob"], None),
        DefinitionCommand::Archive,
    ];
    for given in [vec![], created(), archived()] {
        for who in ["bob", "mia:manager", WATCHER, "alice"] {
            for command in &commands {
                assert_eq!(
                    def(&given, by(who, command.clone())),
                    Err(DomainError::NotAdmin {
                        action: "manage workflow definitions"
                    }),
                    "{command:?} by {who} after {} commands",
                    given.len()
                );
            }
        }
    }
}

#[test]
fn definition_lifecycle() {
    let cases: Vec<Case<DefinitionCommand, Result<Vec<DefinitionEvent>, DomainError>>> = vec![
        (
            "create is version 1",
            vec![],
            by(ADMIN, create_definition()),
            Ok(vec![DefinitionEvent::Created {
                name: name("出張申請"),
                route: route(&["@manager/48"]),
            }]),
        ),
        (
            "create twice",
            created(),
            by(ADMIN, create_definition()),
            Err(DomainError::AlreadyExists {
                aggregate: "definition",
            }),
        ),
        (
            "publish before create",
            vec![],
            by(ADMIN, publish(&["bob"], None)),
            Err(DomainError::NotFound {
                aggregate: "definition",
            }),
        ),
        (
            "archive before create",
            vec![],
            by(ADMIN, DefinitionCommand::Archive),
            Err(DomainError::NotFound {
                aggregate: "definition",
            }),
        ),
        (
            "publishing keeps the name unless given",
            created(),
            by(ADMIN, publish(&["bob", "@manager"], None)),
            Ok(vec![DefinitionEvent::VersionPublished {
                version: 2,
                name: name("出張申請"),
                route: route(&["bob", "@manager"]),
            }]),
        ),
        (
            "publishing renames",
            with(created(), [by(ADMIN, publish(&["bob"], None))]),
            by(ADMIN, publish(&["carol"], Some("国内出張申請"))),
            Ok(vec![DefinitionEvent::VersionPublished {
                version: 3,
                name: name("国内出張申請"),
                route: route(&["carol"]),
            }]),
        ),
        (
            "archive",
            created(),
            by(ADMIN, DefinitionCommand::Archive),
            Ok(vec![DefinitionEvent::Archived {}]),
        ),
        (
            "publish after archive",
            archived(),
            by(ADMIN, publish(&["bob"], None)),
            Err(DomainError::DefinitionArchived),
        ),
        (
            "archive twice",
            archived(),
            by(ADMIN, DefinitionCommand::Archive),
            Err(DomainError::DefinitionArchived),
        ),
        (
            "create after archive",
            archived(),
            by(ADMIN, create_definition()),
            Err(DomainError::AlreadyExists {
                aggregate: "definition",
            }),
        ),
    ];
    for (case, given, when, expected) in cases {
        assert_eq!(def(&given, when), expected, "{case}");
    }
}

#[test]
fn the_state_is_the_current_version() {
    let given = with(
        created(),
        [
            by(ADMIN, publish(&["bob/24"], None)),
            by(ADMIN, publish(&["carol", "@manager"], Some("国内出張申請"))),
        ],
    );
    let (state, history) = record::<Definition>(&given);
    let expected = Definition {
        name: name("国内出張申請"),
        version: 3,
        route: route(&["carol", "@manager"]),
        archived: false,
    };
    assert_eq!(state, Some(expected.clone()));
    assert_eq!(replay::<Definition>(&history), Ok(Some(expected)));
}

#[test]
fn a_workflow_pins_the_current_version_of_an_active_definition() {
    let id = DefinitionId::new(uuid::Uuid::from_u128(42));
    let (state, _) = record::<Definition>(&with(
        created(),
        [by(ADMIN, publish(&["bob/24", "@manager"], None))],
    ));
    let (pinned, pinned_route) = state.unwrap().pin(id).unwrap();
    assert_eq!(
        pinned,
        DefinitionRef {
            id,
            version: 2,
            name: name("出張申請"),
        }
    );
    assert_eq!(pinned_route, route(&["bob/24", "@manager"]));

    let create = WorkflowCommand::Create {
        title: Title::parse("title", "出張申請：大阪").unwrap(),
        description: Description::parse("description", "").unwrap(),
        priority: Priority::Medium,
        route: pinned_route,
        definition: Some(pinned.clone()),
        due_date: None,
    };
    let events = run::<Workflow>(&[], by("alice", create)).unwrap();
    assert!(
        matches!(&events[..], [WorkflowEvent::Created { definition: Some(d), .. }] if *d == pinned)
    );

    let (archived_state, _) = record::<Definition>(&archived());
    assert_eq!(
        archived_state.unwrap().pin(id),
        Err(DomainError::DefinitionArchived)
    );
}

#[test]
fn evolve_refuses_impossible_definition_histories() {
    let (_, history) = record::<Definition>(&created());
    let (_, archived_history) = record::<Definition>(&archived());
    let published = |version| DefinitionEvent::VersionPublished {
        version,
        name: name("出張申請"),
        route: route(&["bob"]),
    };
    let empty_route: Route = serde_json::from_str("[]").unwrap();
    let cases: Vec<(&str, Vec<DefinitionEvent>, DefinitionEvent)> = vec![
        (
            "an event before creation",
            vec![],
            DefinitionEvent::Archived {},
        ),
        (
            "an empty route",
            vec![],
            DefinitionEvent::Created {
                name: name("x"),
                route: empty_route.clone(),
            },
        ),
        ("creation twice", history.clone(), history[0].clone()),
        ("a skipped version", history.clone(), published(3)),
        ("a repeated version", history.clone(), published(1)),
        (
            "a version with an empty route",
            history.clone(),
            DefinitionEvent::VersionPublished {
                version: 2,
                name: name("x"),
                route: empty_route,
            },
        ),
        (
            "a version after archiving",
            archived_history.clone(),
            published(2),
        ),
        (
            "archiving twice",
            archived_history,
            DefinitionEvent::Archived {},
        ),
    ];
    for (case, history, event) in cases {
        let state = replay::<Definition>(&history).unwrap_or_else(|e| panic!("{case}: {e}"));
        let error = Definition::evolve(state, &event).expect_err(case);
        assert_eq!(error.event_type, event.event_type(), "{case}");
    }
}
