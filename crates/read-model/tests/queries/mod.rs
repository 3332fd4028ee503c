//! The lists, "my tasks", the search and the dashboard, over read models built by the
//! projection from domain events, checked against the projected rows themselves.

use super::{
    apply_all, approved_by, assigned, assigned_until, commented, decided, definition, delegated,
    full_rows, get, read_db, reason, route, start, user, History,
};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use read_model::{
    dashboard, list_my_tasks, list_workflows, search_workflows, Assignee, MatchedField, Page,
    QueryError, SearchHit, SearchText, SortDirection, WorkflowFilter, WorkflowQuery, WorkflowSort,
    WorkflowView, Zone,
};
use sqlx::PgPool;
use std::cmp::Reverse;
use std::collections::HashSet;
use std::future::Future;
use uuid::Uuid;
use workflow_domain::{
    Approver, Decision, Description, DisplayName, Priority, Role, Status, Title, WorkflowEvent,
};

/// What a workflow is created with.
#[derive(Clone, Copy)]
struct Draft {
    title: &'static str,
    description: &'static str,
    priority: Priority,
    applicant: &'static str,
    approvers: &'static [&'static str],
    from_definition: bool,
    due_date: Option<&'static str>,
}

const DRAFT: Draft = Draft {
    title: "出張申請：大阪",
    description: "二泊三日",
    priority: Priority::Medium,
    applicant: "alice",
    approvers: &["bob"],
    from_definition: false,
    due_date: None,
};

fn created_as(draft: Draft) -> WorkflowEvent {
    WorkflowEvent::Created {
        title: Title::parse("title", draft.title).unwrap(),
        description: Description::parse("description", draft.description).unwrap(),
        priority: draft.priority,
        applicant_id: user(draft.applicant),
        applicant_name: DisplayName::parse("name", &draft.applicant.to_uppercase()).unwrap(),
        route: route(draft.approvers, None),
        definition: draft.from_definition.then(definition),
        due_date: draft.due_date.map(|d| d.parse().unwrap()),
    }
}

/// Projects a workflow of `tenant` created at `at` as `draft`, then after `pause` the events
/// `then` one second apart.
async fn project(
    pool: &PgPool,
    tenant: &'static str,
    at: DateTime<Utc>,
    draft: Draft,
    pause: Duration,
    then: Vec<WorkflowEvent>,
) -> Uuid {
    let mut h = History::new(tenant, at);
    let mut events = vec![h.next(created_as(draft))];
    h.pause(pause);
    events.extend(then.into_iter().map(|event| h.next(event)));
    apply_all(pool, &events).await;
    h.id
}

/// The instant the fixtures call now: a day after they start.
fn now() -> DateTime<Utc> {
    start() + Duration::days(1)
}

fn minutes(n: i64) -> DateTime<Utc> {
    start() + Duration::minutes(n)
}

fn submitted_to(who: &str, due_at: Option<DateTime<Utc>>) -> Vec<WorkflowEvent> {
    vec![WorkflowEvent::Submitted {}, assigned_until(1, who, due_at)]
}

fn cancelled() -> WorkflowEvent {
    WorkflowEvent::Cancelled {
        reason: None,
        cancelled_by: user("alice"),
    }
}

fn me(user_id: &str, roles: &[&str]) -> Assignee {
    Assignee {
        user_id: user(user_id),
        roles: roles
            .iter()
            .map(|role| Role::parse("role", role).unwrap())
            .collect(),
    }
}

/// Thirteen workflows of acme in every status, with ties in every sort key, and two of globex
/// that would match every filter. Returns acme's rows as projected.
async fn seed_lists(pool: &PgPool) -> Vec<WorkflowView> {
    let none = Duration::zero();
    let june = Some("2026-06-01");
    let seeds: Vec<(i64, Draft, Duration, Vec<WorkflowEvent>)> = vec![
        // A draft that was discussed long after it was created.
        (
            0,
            Draft {
                priority: Priority::Low,
                ..DRAFT
            },
            Duration::minutes(30),
            vec![commented("bob", "いつですか？")],
        ),
        (
            0,
            Draft {
                from_definition: true,
                due_date: june,
                ..DRAFT
            },
            none,
            submitted_to("bob", Some(now() - Duration::hours(1))),
        ),
        (
            1,
            Draft {
                priority: Priority::High,
                applicant: "zoe",
                approvers: &["@manager"],
                due_date: june,
                ..DRAFT
            },
            none,
            submitted_to("@manager", Some(now() + Duration::hours(1))),
        ),
        (
            1,
            Draft {
                priority: Priority::Urgent,
                approvers: &["@manager"],
                from_definition: true,
                due_date: Some("2026-05-20"),
                ..DRAFT
            },
            none,
            submitted_to("@manager", Some(now() - Duration::hours(2))),
        ),
        (
            2,
            Draft {
                priority: Priority::Low,
                applicant: "zoe",
                approvers: &["carol", "bob"],
                ..DRAFT
            },
            none,
            [
                submitted_to("carol", None),
                vec![approved_by(1, "carol"), assigned(2, "bob")],
            ]
            .concat(),
        ),
        (
            3,
            Draft {
                due_date: Some("2026-07-01"),
                ..DRAFT
            },
            none,
            [
                submitted_to("bob", None),
                vec![approved_by(1, "bob"), WorkflowEvent::Approved {}],
            ]
            .concat(),
        ),
        (
            3,
            Draft {
                priority: Priority::High,
                applicant: "zoe",
                from_definition: true,
                ..DRAFT
            },
            none,
            [
                submitted_to("bob", None),
                vec![
                    decided(1, Decision::Rejected, "bob", "高すぎます"),
                    WorkflowEvent::Rejected {
                        reason: reason("高すぎます"),
                    },
                ],
            ]
            .concat(),
        ),
        (
            4,
            Draft {
                priority: Priority::Urgent,
                due_date: Some("2026-05-20"),
                ..DRAFT
            },
            none,
            vec![cancelled()],
        ),
        // Handed on by a manager to bob: waits for bob now, with the managers' deadline.
        (
            5,
            Draft {
                priority: Priority::High,
                applicant: "zoe",
                approvers: &["@manager"],
                ..DRAFT
            },
            none,
            [
                submitted_to("@manager", Some(now() - Duration::minutes(1))),
                vec![
                    delegated(1, "mike", "bob"),
                    assigned_until(1, "bob", Some(now() - Duration::minutes(1))),
                ],
            ]
            .concat(),
        ),
        (
            5,
            Draft {
                applicant: "zoe",
                approvers: &["carol"],
                due_date: Some("2026-06-15"),
                ..DRAFT
            },
            none,
            submitted_to("carol", Some(now() - Duration::hours(3))),
        ),
        (
            6,
            Draft {
                priority: Priority::Urgent,
                applicant: "zoe",
                from_definition: true,
                due_date: june,
                ..DRAFT
            },
            none,
            [
                submitted_to("bob", None),
                vec![decided(
                    1,
                    Decision::RequestedChanges,
                    "bob",
                    "直してください",
                )],
            ]
            .concat(),
        ),
        (
            7,
            Draft {
                priority: Priority::Low,
                ..DRAFT
            },
            none,
            (0..4).map(|_| commented("alice", "補足")).collect(),
        ),
        // bob's own workflow waits for the managers, whom bob is one of.
        (
            8,
            Draft {
                applicant: "bob",
                approvers: &["@manager"],
                ..DRAFT
            },
            none,
            submitted_to("@manager", None),
        ),
    ];
    let mut ids = Vec::new();
    for (minute, draft, pause, then) in seeds {
        ids.push(project(pool, "acme", minutes(minute), draft, pause, then).await);
    }
    for minute in [0, 9] {
        let overdue = Some(now() - Duration::hours(5));
        let draft = Draft {
            from_definition: true,
            approvers: &["@manager"],
            ..DRAFT
        };
        let then = submitted_to("@manager", overdue);
        project(
            pool,
            "globex",
            minutes(minute),
            draft,
            Duration::zero(),
            then,
        )
        .await;
        let draft = Draft {
            applicant: "zoe",
            ..DRAFT
        };
        let then = submitted_to("bob", overdue);
        project(
            pool,
            "globex",
            minutes(minute),
            draft,
            Duration::zero(),
            then,
        )
        .await;
    }
    let mut rows = Vec::new();
    for id in ids {
        rows.push(get(pool, "acme", id).await.unwrap());
    }
    for status in Status::ALL {
        assert!(
            rows.iter().any(|wf| wf.status == status),
            "{status:?} is seeded"
        );
    }
    rows
}

/// Every page of a list, `page_size` at a time from the start, checking the cursor of each
/// item continues right after it and the total is the same on every page. Returns the ids in
/// list order and the total.
async fn walk<T, F, Fut>(page_size: usize, id: impl Fn(&T) -> Uuid, list: F) -> (Vec<Uuid>, u64)
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, QueryError>>,
{
    let mut seen = Vec::new();
    let mut totals = HashSet::new();
    let mut after = None;
    loop {
        let page = list(after.clone()).await.unwrap();
        assert!(page.items.len() <= page_size);
        totals.insert(page.total_count);
        seen.extend(page.items.iter().map(|(_, item)| id(item)));
        after = page.items.last().map(|(cursor, _)| cursor.clone());
        if !page.has_next_page {
            break;
        }
        assert_eq!(page.items.len(), page_size, "only the last page is short");
    }
    assert_eq!(totals.len(), 1, "one total on every page: {totals:?}");
    let unique: HashSet<&Uuid> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    (seen, totals.into_iter().next().unwrap())
}

fn waits_for(wf: &WorkflowView, who: &Assignee) -> bool {
    match wf.current.as_ref().map(|c| &c.assignee) {
        Some(Approver::User(user)) => *user == who.user_id,
        Some(Approver::Role(role)) => {
            who.roles.contains(role) && wf.applicant_id != who.user_id.as_str()
        }
        None => false,
    }
}

fn priority_rank(priority: Priority) -> u8 {
    match priority {
        Priority::Low => 1,
        Priority::Medium => 2,
        Priority::High => 3,
        Priority::Urgent => 4,
    }
}

/// Ids in a sort's order, ties broken by id, as the list must give them.
fn sorted(rows: &[&WorkflowView], sort: WorkflowSort, direction: SortDirection) -> Vec<Uuid> {
    let no_due_date = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
    let mut rows = rows.to_vec();
    match sort {
        WorkflowSort::CreatedAt => rows.sort_by_key(|wf| (wf.created_at, wf.id)),
        WorkflowSort::UpdatedAt => rows.sort_by_key(|wf| (wf.updated_at, wf.id)),
        WorkflowSort::DueDate => rows.sort_by_key(|wf| (wf.due_date.unwrap_or(no_due_date), wf.id)),
        WorkflowSort::Priority => rows.sort_by_key(|wf| (priority_rank(wf.priority), wf.id)),
    }
    if direction == SortDirection::Descending {
        rows.reverse();
    }
    rows.into_iter().map(|wf| wf.id).collect()
}

#[tokio::test]
async fn each_filter_alone_and_combined_lists_exactly_its_workflows() {
    let pool = read_db().await;
    let rows = seed_lists(&pool).await;
    let definition_id = definition().id;
    let bob_the_manager = me("bob", &["manager"]);
    type Case = (
        &'static str,
        WorkflowFilter,
        Box<dyn Fn(&WorkflowView) -> bool>,
    );
    let cases: Vec<Case> = vec![
        ("no filter", WorkflowFilter::default(), Box::new(|_| true)),
        (
            "status",
            WorkflowFilter {
                status: Some(Status::InProgress),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| wf.status == Status::InProgress),
        ),
        (
            "priority",
            WorkflowFilter {
                priority: Some(Priority::High),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| wf.priority == Priority::High),
        ),
        (
            "applicant",
            WorkflowFilter {
                applicant_id: Some(user("zoe")),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| wf.applicant_id == "zoe"),
        ),
        (
            "assignee, directly or by delegation",
            WorkflowFilter {
                assignee: Some(me("bob", &[])),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| waits_for(wf, &me("bob", &[]))),
        ),
        (
            "assignee with roles, not for their own workflow",
            WorkflowFilter {
                assignee: Some(bob_the_manager.clone()),
                ..WorkflowFilter::default()
            },
            Box::new(move |wf| waits_for(wf, &bob_the_manager)),
        ),
        (
            "definition",
            WorkflowFilter {
                definition_id: Some(definition_id),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| wf.definition.is_some()),
        ),
        (
            "created from",
            WorkflowFilter {
                created_after: Some(minutes(3)),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| wf.created_at >= minutes(3)),
        ),
        (
            "created before",
            WorkflowFilter {
                created_before: Some(minutes(3)),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| wf.created_at < minutes(3)),
        ),
        (
            "overdue",
            WorkflowFilter {
                overdue_at: Some(now()),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| {
                wf.status == Status::InProgress
                    && wf.current.as_ref().and_then(|c| c.due_at) < Some(now())
                    && wf.current.as_ref().and_then(|c| c.due_at).is_some()
            }),
        ),
        (
            "status, priority and applicant",
            WorkflowFilter {
                status: Some(Status::InProgress),
                priority: Some(Priority::Urgent),
                applicant_id: Some(user("alice")),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| {
                wf.status == Status::InProgress
                    && wf.priority == Priority::Urgent
                    && wf.applicant_id == "alice"
            }),
        ),
        (
            "overdue for bob, created in a range",
            WorkflowFilter {
                assignee: Some(me("bob", &[])),
                overdue_at: Some(now()),
                created_after: Some(minutes(0)),
                created_before: Some(minutes(6)),
                ..WorkflowFilter::default()
            },
            Box::new(|wf| {
                waits_for(wf, &me("bob", &[]))
                    && wf
                        .current
                        .as_ref()
                        .and_then(|c| c.due_at)
                        .is_some_and(|d| d < now())
                    && wf.created_at < minutes(6)
            }),
        ),
        (
            "nothing matches",
            WorkflowFilter {
                status: Some(Status::Draft),
                applicant_id: Some(user("zoe")),
                ..WorkflowFilter::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (name, filter, keep) in cases {
        let kept: Vec<&WorkflowView> = rows.iter().filter(|wf| keep(wf)).collect();
        let want = sorted(&kept, WorkflowSort::CreatedAt, SortDirection::Descending);
        let query = WorkflowQuery {
            filter,
            ..WorkflowQuery::default()
        };
        let (seen, total) = walk(
            3,
            |wf: &WorkflowView| wf.id,
            |after| {
                let query = query.clone();
                let pool = pool.clone();
                async move { list_workflows(&pool, "acme", query, 3, after.as_deref()).await }
            },
        )
        .await;
        assert_eq!(seen, want, "{name}");
        assert_eq!(total, want.len() as u64, "{name}");
        assert!(
            name == "nothing matches" || !want.is_empty(),
            "{name} matches something"
        );
    }
}

#[tokio::test]
async fn every_sort_in_both_directions_walks_every_row_once_in_order() {
    let pool = read_db().await;
    let rows = seed_lists(&pool).await;
    let in_progress = WorkflowFilter {
        status: Some(Status::InProgress),
        ..WorkflowFilter::default()
    };
    for sort in [
        WorkflowSort::CreatedAt,
        WorkflowSort::UpdatedAt,
        WorkflowSort::DueDate,
        WorkflowSort::Priority,
    ] {
        for direction in [SortDirection::Ascending, SortDirection::Descending] {
            for filter in [WorkflowFilter::default(), in_progress.clone()] {
                let kept: Vec<&WorkflowView> = rows
                    .iter()
                    .filter(|wf| filter.status.is_none_or(|s| wf.status == s))
                    .collect();
                let want = sorted(&kept, sort, direction);
                let query = WorkflowQuery {
                    filter: filter.clone(),
                    sort,
                    direction,
                };
                for page_size in [1, 4, 100] {
                    let (seen, total) = walk(
                        page_size,
                        |wf: &WorkflowView| wf.id,
                        |after| {
                            let (query, pool) = (query.clone(), pool.clone());
                            async move {
                                list_workflows(
                                    &pool,
                                    "acme",
                                    query,
                                    page_size as u32,
                                    after.as_deref(),
                                )
                                .await
                            }
                        },
                    )
                    .await;
                    let case = format!("{sort:?} {direction:?} {:?} by {page_size}", filter.status);
                    assert_eq!(seen, want, "{case}");
                    assert_eq!(total, want.len() as u64, "{case}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_cursor_of_another_sort_or_list_is_refused() {
    let pool = read_db().await;
    seed_lists(&pool).await;
    let query = |sort, direction| WorkflowQuery {
        sort,
        direction,
        ..WorkflowQuery::default()
    };
    let first = list_workflows(
        &pool,
        "acme",
        query(WorkflowSort::Priority, SortDirection::Descending),
        2,
        None,
    )
    .await
    .unwrap();
    let cursor = first.items[1].0.clone();
    let next = list_workflows(
        &pool,
        "acme",
        query(WorkflowSort::Priority, SortDirection::Descending),
        2,
        Some(&cursor),
    )
    .await
    .unwrap();
    assert!(!next.items.is_empty());
    for (sort, direction) in [
        (WorkflowSort::Priority, SortDirection::Ascending),
        (WorkflowSort::CreatedAt, SortDirection::Descending),
        (WorkflowSort::DueDate, SortDirection::Descending),
    ] {
        let error = list_workflows(&pool, "acme", query(sort, direction), 2, Some(&cursor))
            .await
            .unwrap_err();
        assert!(
            matches!(error, QueryError::InvalidCursor),
            "{sort:?} {direction:?}"
        );
    }
    let task = list_my_tasks(&pool, "acme", &me("bob", &[]), 1, None)
        .await
        .unwrap();
    let error = list_workflows(&pool, "acme", None, 2, Some(&task.items[0].0))
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::InvalidCursor));
    let error = list_my_tasks(&pool, "acme", &me("bob", &[]), 2, Some(&cursor))
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::InvalidCursor));
}

#[tokio::test]
async fn my_tasks_are_the_steps_waiting_for_me_newest_assignment_first() {
    let pool = read_db().await;
    let rows = seed_lists(&pool).await;
    let cases = [
        (
            "bob: his steps and the one delegated to him",
            "acme",
            me("bob", &[]),
        ),
        (
            "bob the manager: also the managers' steps, but not his own workflow's",
            "acme",
            me("bob", &["manager"]),
        ),
        (
            "mike the manager: not the step he handed on",
            "acme",
            me("mike", &["manager"]),
        ),
        (
            "alice the manager: not her own workflow's",
            "acme",
            me("alice", &["manager", "auditor"]),
        ),
        ("carol", "acme", me("carol", &[])),
        ("nobody's", "acme", me("dave", &["auditor"])),
    ];
    for (name, tenant, who) in cases {
        let mut mine: Vec<&WorkflowView> = rows.iter().filter(|wf| waits_for(wf, &who)).collect();
        mine.sort_by_key(|wf| Reverse((wf.current.as_ref().unwrap().assigned_at, wf.id)));
        let want: Vec<Uuid> = mine.iter().map(|wf| wf.id).collect();
        let (seen, total) = walk(
            2,
            |wf: &WorkflowView| wf.id,
            |after| {
                let (who, pool) = (who.clone(), pool.clone());
                async move { list_my_tasks(&pool, tenant, &who, 2, after.as_deref()).await }
            },
        )
        .await;
        assert_eq!(seen, want, "{name}");
        assert_eq!(total, want.len() as u64, "{name}");
    }
    let bob = list_my_tasks(&pool, "acme", &me("bob", &["manager"]), 100, None)
        .await
        .unwrap();
    let ids: HashSet<Uuid> = bob.items.iter().map(|(_, wf)| wf.id).collect();
    let delegated = rows
        .iter()
        .find(|wf| wf.steps[0].delegated_to.as_deref() == Some("bob"))
        .unwrap();
    let own = rows.iter().find(|wf| wf.applicant_id == "bob").unwrap();
    assert!(ids.contains(&delegated.id) && !ids.contains(&own.id));
    assert_eq!(bob.total_count, 5);
    // The waiting step is on each item.
    for (_, wf) in &bob.items {
        let current = wf.current.as_ref().unwrap();
        assert_eq!(wf.status, Status::InProgress);
        assert_eq!(wf.steps[current.step as usize - 1].due_at, current.due_at);
    }

    // globex's steps for bob are not acme's, and the other way round.
    let globex = list_my_tasks(&pool, "globex", &me("bob", &["manager"]), 100, None)
        .await
        .unwrap();
    assert_eq!(globex.total_count, 4);
    assert!(globex.items.iter().all(|(_, wf)| wf.tenant_id == "globex"));
    assert!(globex.items.iter().all(|(_, wf)| !ids.contains(&wf.id)));
}

#[tokio::test]
async fn lists_never_show_another_tenants_workflows() {
    let pool = read_db().await;
    seed_lists(&pool).await;
    let everything = WorkflowQuery::default();
    let page = list_workflows(&pool, "initech", everything.clone(), 100, None)
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total_count), (0, 0));
    let page = list_workflows(&pool, "globex", everything, 100, None)
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.total_count), (4, 4));
    assert!(page.items.iter().all(|(_, wf)| wf.tenant_id == "globex"));
}

/// Search fixtures: `(title, description, comments)`, each created a minute after the last.
const DOCUMENTS: [(&str, &str, &[&str]); 10] = [
    ("出張申請：大阪", "新幹線で移動", &[]),
    ("経費精算", "大阪出張の交通費", &[]),
    ("備品購入", "", &["出張のついでに購入します"]),
    ("Business Trip to Tokyo", "Meeting with the CLIENT", &[]),
    ("Team lunch", "Planning our next TRIP", &[]),
    ("進捗100%_完了", "", &[]),
    ("進捗100X完了", "", &[]),
    ("出張", "", &[]),
    // The same title as the first, changed later: ranked above it.
    ("出張申請：大阪", "", &[]),
    ("会議室予約", "", &["trip? no"]),
];

/// Projects [`DOCUMENTS`] in acme, and the first in globex. Returns acme's ids in order.
async fn seed_search(pool: &PgPool) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for (i, (title, description, comments)) in DOCUMENTS.into_iter().enumerate() {
        let draft = Draft {
            title,
            description,
            ..DRAFT
        };
        let then = comments.iter().map(|c| commented("bob", c)).collect();
        let at = minutes(i as i64);
        ids.push(project(pool, "acme", at, draft, Duration::zero(), then).await);
    }
    let (title, description, _) = DOCUMENTS[0];
    let draft = Draft {
        title,
        description,
        ..DRAFT
    };
    project(pool, "globex", minutes(30), draft, Duration::zero(), vec![]).await;
    ids
}

#[tokio::test]
async fn search_finds_substrings_in_any_script_best_match_first() {
    use MatchedField::{Comment, Description, Title};
    let pool = read_db().await;
    let ids = seed_search(&pool).await;
    let cases: [(&str, &[(usize, MatchedField)]); 10] = [
        // Two characters: matched by a scan, not the trigram index.
        (
            "出張",
            &[
                (7, Title),
                (8, Title),
                (0, Title),
                (1, Description),
                (2, Comment),
            ],
        ),
        ("大阪", &[(8, Title), (0, Title), (1, Description)]),
        ("出張申請", &[(8, Title), (0, Title)]),
        ("ついで", &[(2, Comment)]),
        // Case-insensitive, and a title match above a closer description match.
        ("trip", &[(3, Title), (4, Description), (9, Comment)]),
        ("TRIP", &[(3, Title), (4, Description), (9, Comment)]),
        ("client", &[(3, Description)]),
        // Wildcards are literal characters.
        ("100%_", &[(5, Title)]),
        ("%", &[(5, Title)]),
        ("見つからない", &[]),
    ];
    for (text, want) in cases {
        let text = SearchText::parse(text).unwrap();
        let want: Vec<(Uuid, MatchedField)> =
            want.iter().map(|&(i, field)| (ids[i], field)).collect();
        for page_size in [2, 100] {
            let (seen, total) = walk(
                page_size,
                |hit: &SearchHit| hit.workflow.id,
                |after| {
                    let (text, pool) = (text.clone(), pool.clone());
                    async move {
                        search_workflows(&pool, "acme", &text, page_size as u32, after.as_deref())
                            .await
                    }
                },
            )
            .await;
            let want_ids: Vec<Uuid> = want.iter().map(|(id, _)| *id).collect();
            assert_eq!(seen, want_ids, "{text:?} by {page_size}");
            assert_eq!(total, want.len() as u64, "{text:?}");
        }
        let page = search_workflows(&pool, "acme", &text, 100, None)
            .await
            .unwrap();
        let matched: Vec<(Uuid, MatchedField)> = page
            .items
            .iter()
            .map(|(_, hit)| (hit.workflow.id, hit.matched))
            .collect();
        assert_eq!(matched, want, "{text:?}");
        assert!(page
            .items
            .iter()
            .all(|(_, hit)| hit.workflow.tenant_id == "acme"));
    }
}

#[tokio::test]
async fn search_never_returns_another_tenants_workflows() {
    let pool = read_db().await;
    seed_search(&pool).await;
    for (tenant, text, count) in [
        ("globex", "出張", 1),
        ("globex", "出張申請：大阪", 1),
        ("globex", "trip", 0),
        ("initech", "出張", 0),
    ] {
        let text = SearchText::parse(text).unwrap();
        let page = search_workflows(&pool, tenant, &text, 100, None)
            .await
            .unwrap();
        assert_eq!(page.total_count, count, "{tenant} {text:?}");
        assert_eq!(page.items.len() as u64, count);
        assert!(page
            .items
            .iter()
            .all(|(_, hit)| hit.workflow.tenant_id == tenant));
    }
    let first = search_workflows(&pool, "acme", &SearchText::parse("出張").unwrap(), 1, None)
        .await
        .unwrap();
    let error = list_workflows(&pool, "acme", None, 1, Some(&first.items[0].0))
        .await
        .unwrap_err();
    assert!(matches!(error, QueryError::InvalidCursor));
}

/// A workflow of `tenant` submitted at `submitted_at`, sent back and resubmitted if `resubmit`,
/// and decided (`Approved` or `Rejected`) at exactly `decided_at`.
async fn decided_at(
    pool: &PgPool,
    tenant: &'static str,
    submitted_at: DateTime<Utc>,
    resubmit: bool,
    decision: Decision,
    decided_at: DateTime<Utc>,
) {
    let mut h = History::new(tenant, submitted_at - Duration::seconds(1));
    let mut events = vec![
        h.next(created_as(DRAFT)),
        h.next(WorkflowEvent::Submitted {}),
        h.next(assigned(1, "bob")),
    ];
    if resubmit {
        events.push(h.next(decided(1, Decision::RequestedChanges, "bob", "直して")));
        events.push(h.next(WorkflowEvent::Submitted {}));
        events.push(h.next(assigned(1, "bob")));
    }
    // The decision and the workflow's end are one second apart.
    h.pause(decided_at - h.at(h.version + 2));
    let end = match decision {
        Decision::Approved => WorkflowEvent::Approved {},
        _ => WorkflowEvent::Rejected {
            reason: reason("no"),
        },
    };
    events.push(h.next(decided(1, decision, "bob", "no")));
    events.push(h.next(end));
    assert_eq!(events.last().unwrap().occurred_at, decided_at);
    apply_all(pool, &events).await;
}

fn utc(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

#[tokio::test]
async fn the_dashboard_counts_every_number_in_the_callers_zone() {
    let pool = read_db().await;
    // 10:00 in Tokyo, 21:00 the evening before in New York.
    let now = utc("2026-05-11T01:00:00Z");
    let none = Duration::zero();
    project(
        &pool,
        "acme",
        utc("2026-05-01T00:00:00Z"),
        DRAFT,
        none,
        vec![],
    )
    .await;
    // Waiting for bob, overdue; for the managers, not yet due; for carol, overdue; and for the
    // managers without a deadline.
    let waiting = [
        (&["bob"], Some(now - Duration::minutes(1))),
        (&["@manager"], Some(now + Duration::hours(1))),
        (&["carol"], Some(now - Duration::days(2))),
        (&["@manager"], None),
    ];
    for (approvers, due_at) in waiting {
        let draft = Draft { approvers, ..DRAFT };
        let then = submitted_to(approvers[0], due_at);
        project(
            &pool,
            "acme",
            utc("2026-05-01T00:00:00Z"),
            draft,
            none,
            then,
        )
        .await;
    }
    // Decided 2 h, 30 min and (after a resubmission) 5 h after the first submission.
    decided_at(
        &pool,
        "acme",
        utc("2026-05-10T14:00:00Z"),
        false,
        Decision::Approved,
        utc("2026-05-10T16:00:00Z"),
    )
    .await;
    decided_at(
        &pool,
        "acme",
        utc("2026-05-10T09:30:00Z"),
        false,
        Decision::Rejected,
        utc("2026-05-10T10:00:00Z"),
    )
    .await;
    decided_at(
        &pool,
        "acme",
        utc("2026-05-10T19:30:00Z"),
        true,
        Decision::Approved,
        utc("2026-05-11T00:30:00Z"),
    )
    .await;
    project(
        &pool,
        "acme",
        utc("2026-05-09T12:00:00Z"),
        DRAFT,
        none,
        vec![cancelled()],
    )
    .await;
    // Noise that must not count.
    for tenant in ["globex", "globex"] {
        decided_at(
            &pool,
            tenant,
            utc("2026-05-10T00:00:00Z"),
            false,
            Decision::Approved,
            utc("2026-05-11T00:59:00Z"),
        )
        .await;
        let then = submitted_to("bob", Some(now - Duration::hours(1)));
        project(
            &pool,
            tenant,
            utc("2026-05-01T00:00:00Z"),
            DRAFT,
            none,
            then,
        )
        .await;
    }

    let bob = me("bob", &["manager"]);
    let average = (2.0 * 3600.0 + 30.0 * 60.0 + 5.0 * 3600.0) / 3.0;
    let tokyo_midnight = utc("2026-05-10T15:00:00Z");
    let new_york_midnight = utc("2026-05-10T04:00:00Z");
    let utc_midnight = utc("2026-05-11T00:00:00Z");
    let offset = |seconds| Zone::Offset(FixedOffset::east_opt(seconds).unwrap());
    let cases = [
        ("UTC by default", Zone::parse("").unwrap(), utc_midnight, 1),
        ("UTC by name", Zone::Named("UTC".into()), utc_midnight, 1),
        ("Tokyo by offset", offset(9 * 3600), tokyo_midnight, 2),
        (
            "Tokyo by name",
            Zone::Named("Asia/Tokyo".into()),
            tokyo_midnight,
            2,
        ),
        (
            "Tokyo in lower case",
            Zone::Named("asia/tokyo".into()),
            tokyo_midnight,
            2,
        ),
        (
            "New York by offset",
            offset(-4 * 3600),
            new_york_midnight,
            3,
        ),
        (
            "New York by name, in daylight saving time",
            Zone::Named("America/New_York".into()),
            new_york_midnight,
            3,
        ),
    ];
    for (name, zone, midnight, completed_today) in cases {
        let board = dashboard(&pool, "acme", &bob, now, &zone).await.unwrap();
        assert_eq!(
            board.by_status,
            [
                (Status::Draft, 1),
                (Status::InProgress, 4),
                (Status::ChangesRequested, 0),
                (Status::Approved, 2),
                (Status::Rejected, 1),
                (Status::Cancelled, 1),
            ],
            "{name}"
        );
        // bob's own step, and the managers' two (bob applied for neither).
        assert_eq!(board.pending_for_me, 3, "{name}");
        assert_eq!(board.overdue, 2, "{name}");
        assert_eq!(board.today_started_at, midnight, "{name}");
        assert_eq!(board.completed_today, completed_today, "{name}");
        assert_eq!(board.average_decision_seconds, Some(average), "{name}");
    }
    // The first approval ended at 16:00 UTC: midnight exactly at UTC+08:00, today; one minute
    // before midnight at UTC+07:59, the day before.
    for (minutes_east, midnight, completed_today) in [
        (8 * 60, utc("2026-05-10T16:00:00Z"), 2),
        (7 * 60 + 59, utc("2026-05-10T16:01:00Z"), 1),
    ] {
        let board = dashboard(&pool, "acme", &bob, now, &offset(minutes_east * 60))
            .await
            .unwrap();
        assert_eq!(
            (board.today_started_at, board.completed_today),
            (midnight, completed_today),
            "UTC+{minutes_east} min"
        );
    }
    // A new day starts at midnight itself.
    for (at, midnight) in [
        (tokyo_midnight, tokyo_midnight),
        (
            tokyo_midnight - Duration::seconds(1),
            tokyo_midnight - Duration::days(1),
        ),
    ] {
        let board = dashboard(&pool, "acme", &bob, at, &offset(9 * 3600))
            .await
            .unwrap();
        assert_eq!(board.today_started_at, midnight, "at {at}");
    }

    let nobody = dashboard(&pool, "initech", &me("bob", &[]), now, &offset(0))
        .await
        .unwrap();
    assert!(nobody.by_status.iter().all(|(_, count)| *count == 0));
    assert_eq!(nobody.by_status.len(), Status::ALL.len());
    assert_eq!(
        (
            nobody.pending_for_me,
            nobody.overdue,
            nobody.completed_today
        ),
        (0, 0, 0)
    );
    assert_eq!(nobody.average_decision_seconds, None);

    let error = dashboard(
        &pool,
        "acme",
        &bob,
        now,
        &Zone::Named("Mars/Olympus".into()),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, QueryError::UnknownTimeZone(_)), "{error}");
}

/// Workflows as commands write them (the events of one command share its time): waiting at
/// step 1, at step 2, for a delegate, after a resubmission, and a draft.
async fn seed_commands(pool: &PgPool) -> Vec<Uuid> {
    let mut histories = Vec::new();
    let mut events = Vec::new();
    let mut workflow = |approvers: &'static [&'static str], commands: Vec<Vec<WorkflowEvent>>| {
        let mut h = History::new("acme", start());
        events.push(h.next(created_as(Draft { approvers, ..DRAFT })));
        for command in commands {
            h.pause(Duration::minutes(10));
            for (i, event) in command.into_iter().enumerate() {
                if i > 0 {
                    h.pause(-Duration::seconds(1));
                }
                events.push(h.next(event));
            }
        }
        histories.push(h.id);
    };
    let submit = |who| vec![WorkflowEvent::Submitted {}, assigned(1, who)];
    workflow(&["bob"], vec![submit("bob")]);
    workflow(
        &["carol", "bob"],
        vec![
            submit("carol"),
            vec![approved_by(1, "carol"), assigned(2, "bob")],
        ],
    );
    workflow(
        &["@manager"],
        vec![
            submit("@manager"),
            vec![delegated(1, "mike", "bob"), assigned(1, "bob")],
            vec![commented("bob", "確認します")],
        ],
    );
    workflow(
        &["bob"],
        vec![
            submit("bob"),
            vec![decided(1, Decision::RequestedChanges, "bob", "直して")],
            submit("bob"),
        ],
    );
    workflow(&["bob"], vec![]);
    apply_all(pool, &events).await;
    histories
}

#[tokio::test]
async fn the_migration_backfills_assignments_and_first_submissions() {
    const MIGRATION: i64 = 20261215000001;
    let reference = read_db().await;
    let ids = seed_commands(&reference).await;
    let (_, old) = test_support::fresh_database("read_model").await;
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .iter()
        .filter(|m| m.version < MIGRATION)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&old).await.unwrap();
    // The rows as the projector wrote them before the new columns existed.
    for id in &ids {
        let (row, steps) = full_rows(&reference, *id).await;
        sqlx::query(
            "INSERT INTO workflows SELECT * FROM jsonb_populate_record(NULL::workflows, $1)",
        )
        .bind(row)
        .execute(&old)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO workflow_steps
             SELECT * FROM jsonb_populate_recordset(NULL::workflow_steps, $1)",
        )
        .bind(steps)
        .execute(&old)
        .await
        .unwrap();
    }
    read_model::migrate(&old).await.unwrap();

    let assigned_at = |wf: &WorkflowView| wf.current.as_ref().map(|c| c.assigned_at);
    let mut backfilled = Vec::new();
    let mut projected = Vec::new();
    for id in &ids {
        backfilled.push(get(&old, "acme", *id).await.unwrap());
        projected.push(get(&reference, "acme", *id).await.unwrap());
    }
    for (name, i) in [("step 1", 0), ("step 2", 1), ("a draft", 4)] {
        assert_eq!(
            assigned_at(&backfilled[i]),
            assigned_at(&projected[i]),
            "{name}"
        );
        assert_eq!(
            backfilled[i].first_submitted_at, projected[i].first_submitted_at,
            "{name}"
        );
    }
    assert!(assigned_at(&projected[0]).is_some() && assigned_at(&projected[1]).is_some());
    // The hand-over's time is not in the old rows; the last change is no earlier.
    assert_eq!(assigned_at(&backfilled[2]), Some(projected[2].updated_at));
    assert!(assigned_at(&projected[2]) < Some(projected[2].updated_at));
    // Neither is the first of two submissions: the latest stands in for it.
    let resubmitted = &projected[3];
    assert_eq!(assigned_at(&backfilled[3]), assigned_at(resubmitted));
    assert_eq!(backfilled[3].first_submitted_at, resubmitted.submitted_at);
    assert!(resubmitted.first_submitted_at < resubmitted.submitted_at);
}

#[tokio::test]
async fn a_detail_holds_the_latest_hundred_comments_and_attachments_and_counts_them_all() {
    let pool = read_db().await;
    let mut h = History::new("acme", start());
    let mut events = vec![h.next(created_as(DRAFT))];
    events.extend((1..=130).map(|n| h.next(commented("bob", &format!("comment {n}")))));
    events.extend((1..=105).map(|n| h.next(super::attached(&format!("scan-{n}.pdf")))));
    apply_all(&pool, &events).await;

    let detail = read_model::get_workflow(&pool, "acme", h.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.workflow.comment_count, 130);
    assert_eq!(detail.workflow.attachment_count, 105);
    let bodies: Vec<&str> = detail.comments.iter().map(|c| c.body.as_str()).collect();
    let latest: Vec<String> = (31..=130).map(|n| format!("comment {n}")).collect();
    assert_eq!(bodies, latest, "the latest 100, oldest of them first");
    let files: Vec<&str> = detail
        .attachments
        .iter()
        .map(|a| a.document.file_name())
        .collect();
    let latest: Vec<String> = (6..=105).map(|n| format!("scan-{n}.pdf")).collect();
    assert_eq!(files, latest);
}

#[tokio::test]
async fn filters_with_times_the_read_model_cannot_compare_are_refused_naming_the_field() {
    let pool = read_db().await;
    let year = |year: i32| {
        NaiveDate::from_ymd_opt(year, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
    };
    let cases = [
        (year(-5000), None, "created_after"),
        (year(0), None, "created_after"),
        (year(2026), Some(year(10_000)), "created_before"),
    ];
    for (after, before, field) in cases {
        let query = WorkflowQuery {
            filter: WorkflowFilter {
                created_after: Some(after),
                created_before: before,
                ..WorkflowFilter::default()
            },
            ..WorkflowQuery::default()
        };
        let error = list_workflows(&pool, "acme", query, 10, None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, QueryError::TimeOutOfRange(f) if f == field),
            "{field}: {error:?}"
        );
    }
    let widest = WorkflowQuery {
        filter: WorkflowFilter {
            created_after: Some(year(1)),
            created_before: Some(year(9999)),
            ..WorkflowFilter::default()
        },
        ..WorkflowQuery::default()
    };
    let page = list_workflows(&pool, "acme", widest, 10, None)
        .await
        .unwrap();
    assert_eq!(page.total_count, 0);
}

#[tokio::test]
async fn pooled_statements_time_out_in_postgresql_and_migrations_are_exempt() {
    let (url, _) = test_support::fresh_database("statement_timeout").await;
    let settings = read_model::DatabaseSettings {
        migrate_on_start: true,
        read_database_url: url,
        database_max_connections: 2,
        database_statement_timeout_ms: 200,
    };
    let pool = settings.connect_migrated().await.unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(timeout, "200ms");
    let error = sqlx::query("SELECT pg_sleep(5)")
        .execute(&pool)
        .await
        .unwrap_err();
    let code = error.as_database_error().and_then(|error| error.code());
    assert_eq!(code.as_deref(), Some("57014"), "query_canceled: {error}");
    // The schema is there: the migrations ran on their own connection.
    let page = list_workflows(&pool, "acme", None, 1, None).await.unwrap();
    assert_eq!(page.total_count, 0);
}
