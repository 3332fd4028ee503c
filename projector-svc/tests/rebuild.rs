//! `verify` and `rebuild` against a real event store (created by event-store's migrator and
//! filled through `EventStore::append`) and a real read database.

mod support;

use event_store::EventStore;
use read_model::WorkflowView;
use sqlx::PgPool;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::{created, printed, stdout};
use uuid::Uuid;
use workflow_domain::{
    Aggregate, Approver, Definition, DefinitionEvent, DefinitionName, Route, StepNo, UserId,
    WorkflowEvent,
};

struct Databases {
    store: EventStore,
    store_url: String,
    read: PgPool,
    read_url: String,
}

async fn databases() -> Databases {
    let (read_url, read) = test_support::fresh_database("projector_read").await;
    read_model::migrate(&read).await.unwrap();
    with_read_database(read_url, read).await
}

/// A fresh event store next to a given read database.
async fn with_read_database(read_url: String, read: PgPool) -> Databases {
    let (store_url, store_pool) = test_support::fresh_database("projector_events").await;
    event_store::MIGRATOR.run(&store_pool).await.unwrap();
    Databases {
        store: EventStore::new(store_pool, &[workflow_domain::REGISTRATION]),
        store_url,
        read,
        read_url,
    }
}

impl Databases {
    /// Appends one command's events to a workflow at `expected_version`.
    async fn append(
        &self,
        tenant: &str,
        id: Uuid,
        expected_version: i64,
        events: &[WorkflowEvent],
    ) {
        support::append(&self.store, tenant, id, expected_version, events).await;
    }

    /// The read model as the live projector leaves it: every stored event applied in order.
    async fn project(&self, tenant: &str, ids: &[Uuid]) {
        for id in ids {
            for event in self
                .store
                .history::<workflow_domain::Workflow>(tenant, *id, 0)
                .await
                .unwrap()
            {
                projection::apply::<read_model::Workflows>(&self.read, &event)
                    .await
                    .unwrap();
            }
        }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let args: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--event-store-url", &self.store_url])
            .collect();
        support::command(&args, &[("RINGIFLOW_READ_DATABASE_URL", &self.read_url)]).await
    }

    async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.read)
            .await
            .unwrap()
    }
}

fn assigned() -> WorkflowEvent {
    WorkflowEvent::StepAssigned {
        step: StepNo::FIRST,
        assignee: Approver::User(UserId::parse("user", "bob").unwrap()),
        due_at: None,
    }
}

async fn get(pool: &PgPool, tenant: &str, id: Uuid) -> WorkflowView {
    read_model::get_workflow(pool, tenant, id)
        .await
        .unwrap()
        .unwrap()
        .workflow
}

#[tokio::test]
async fn verify_finds_corruption_and_rebuild_repairs_it_while_readers_keep_reading() {
    let db = databases().await;
    // 1,200 events: more than one page of the store (1,000), so loading overlaps reading a page
    // with applying the one before.
    let acme: Vec<Uuid> = (0..600).map(|_| Uuid::new_v4()).collect();
    for (i, id) in acme.iter().enumerate() {
        db.append("acme", *id, 0, &[created()]).await;
        if i % 2 == 0 {
            db.append("acme", *id, 1, &[WorkflowEvent::Submitted {}, assigned()])
                .await;
        }
    }
    let globex = Uuid::new_v4();
    db.append("globex", globex, 0, &[created()]).await;
    db.project("acme", &acme).await;
    db.project("globex", &[globex]).await;

    let clean = db.run(&["verify"]).await;
    assert!(clean.status.success(), "{}", printed(&clean));
    assert_eq!(stdout(&clean), "");

    // Corruption by hand: a status, a step, and delivery state the rebuild makes moot.
    let (bent, stepless) = (acme[2], acme[3]);
    let expected = get(&db.read, "acme", bent).await;
    sqlx::query("UPDATE workflows SET status = 'REJECTED' WHERE id = $1")
        .bind(bent)
        .execute(&db.read)
        .await
        .unwrap();
    sqlx::query("DELETE FROM workflow_steps WHERE workflow_id = $1")
        .bind(stepless)
        .execute(&db.read)
        .await
        .unwrap();
    sqlx::query("INSERT INTO pending_events (aggregate_id, version, event) VALUES ($1, 1, '{}')")
        .bind(acme[5])
        .execute(&db.read)
        .await
        .unwrap();
    sqlx::query("INSERT INTO parked_aggregates (aggregate_id, tenant_id, reason) VALUES ($1, 'acme', 'test')")
        .bind(acme[6])
        .execute(&db.read)
        .await
        .unwrap();

    let dirty = db.run(&["verify"]).await;
    assert_eq!(dirty.status.code(), Some(1), "{}", printed(&dirty));
    let mut lines: Vec<String> = stdout(&dirty).lines().map(str::to_owned).collect();
    lines.sort();
    let mut expected_lines = vec![
        format!(
            "workflows {bent}: status is \"REJECTED\" in the read model, \"IN_PROGRESS\" in the events"
        ),
        format!("workflow_steps {stepless} step 1: missing from the read model"),
    ];
    expected_lines.sort();
    assert_eq!(lines, expected_lines, "{}", printed(&dirty));
    // Scoped runs see only their scope.
    for scope in [
        ["--aggregate", &acme[7].to_string()],
        ["--tenant", "globex"],
    ] {
        let scoped = db.run(&["verify", scope[0], scope[1]]).await;
        assert!(scoped.status.success(), "{scope:?}: {}", printed(&scoped));
    }
    let one = db.run(&["verify", "--aggregate", &bent.to_string()]).await;
    assert_eq!(stdout(&one).lines().count(), 1, "{}", printed(&one));

    // A reader asks all along; it must never see an error or an empty answer.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn({
        let (pool, stop, probe) = (db.read.clone(), stop.clone(), acme[0]);
        async move {
            let mut answers = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let page = read_model::list_workflows(&pool, "acme", None, 100, None)
                    .await
                    .map_err(|e| format!("list failed: {e}"))?;
                if page.items.len() != 100 {
                    return Err(format!("list returned {} rows", page.items.len()));
                }
                if read_model::get_workflow(&pool, "acme", probe)
                    .await
                    .map_err(|e| format!("get failed: {e}"))?
                    .is_none()
                {
                    return Err("get found nothing".to_owned());
                }
                answers += 1;
            }
            Ok(answers)
        }
    });
    let rebuild = db.run(&["rebuild"]).await;
    stop.store(true, Ordering::Relaxed);
    let answers = reader
        .await
        .unwrap()
        .expect("the reader was always answered");
    assert!(rebuild.status.success(), "{}", printed(&rebuild));
    assert!(answers > 0);
    let out = stdout(&rebuild);
    assert!(out.contains("events/s"), "{out}");
    // Only the two rows that were wrong are written again.
    assert!(
        out.contains(
            "switched: wrote 1 workflows, 1 workflow_steps, 0 workflow_comments, \
             0 workflow_attachments; removed 0 workflows,"
        ),
        "{out}"
    );

    assert_eq!(get(&db.read, "acme", bent).await, expected);
    assert_eq!(db.count("pending_events").await, 0);
    assert_eq!(db.count("parked_aggregates").await, 0);
    let repaired = db.run(&["verify"]).await;
    assert!(repaired.status.success(), "{}", printed(&repaired));
}

#[tokio::test]
async fn rebuild_leaves_the_read_model_alone_when_an_event_cannot_be_applied() {
    let db = databases().await;
    let good = Uuid::new_v4();
    // Two that different connections load (a rebuild spreads aggregates over its connections
    // by the id's low half), in the store's order.
    let bad = [Uuid::from_u64_pair(1, 1), Uuid::from_u64_pair(2, 2)];
    db.append("acme", good, 0, &[created()]).await;
    db.project("acme", &[good]).await;
    // The store takes what the domain decided; these histories the projection cannot follow.
    for bad in bad.iter().rev() {
        db.append("acme", *bad, 0, &[created(), WorkflowEvent::Approved {}])
            .await;
    }
    sqlx::query("UPDATE workflows SET title = 'bent' WHERE id = $1")
        .bind(good)
        .execute(&db.read)
        .await
        .unwrap();

    let rebuild = db.run(&["rebuild"]).await;
    assert_eq!(rebuild.status.code(), Some(1), "{}", printed(&rebuild));
    let out = stdout(&rebuild);
    let reported: Vec<&str> = out
        .lines()
        .filter(|line| line.starts_with("event "))
        .collect();
    assert_eq!(reported.len(), 2, "{out}");
    for (line, bad) in reported.iter().zip(bad) {
        assert!(
            line.contains(&format!("(workflow {bad} version 2) cannot be applied")),
            "in store order: {out}"
        );
    }
    assert!(out.contains("rebuild abandoned: 2 event(s)"), "{out}");
    assert_eq!(get(&db.read, "acme", good).await.title, "bent", "unchanged");
    let schemas: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'rebuild'")
            .fetch_one(&db.read)
            .await
            .unwrap();
    assert_eq!(schemas, 0, "the shadow is dropped");

    let verify = db.run(&["verify"]).await;
    assert_eq!(verify.status.code(), Some(1), "{}", printed(&verify));
    let out = stdout(&verify);
    assert!(out.contains("cannot be applied"), "{out}");
    assert!(
        out.contains(&format!("workflows {good}: title is \"bent\"")),
        "{out}"
    );
    for bad in bad {
        assert!(
            out.contains(&format!("workflows {bad}: missing from the read model")),
            "{out}"
        );
    }
}

#[tokio::test]
async fn a_rebuild_while_the_live_projector_applies_loses_nothing() {
    let h = support::harness().await;
    // The harness's read database gets its schema from the projector.
    let running = h.start().await;
    let db = with_read_database(h.url.clone(), h.pool.clone()).await;
    let ids: Vec<Uuid> = (0..60).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        db.append("acme", *id, 0, &[created()]).await;
        for event in db
            .store
            .history::<workflow_domain::Workflow>("acme", *id, 0)
            .await
            .unwrap()
        {
            h.publish(&event).await;
        }
    }
    for id in &ids {
        h.wait_for_version(*id, 1).await;
    }

    // New events flow through the live projector while the rebuild loads and switches.
    let writer = async {
        for id in &ids {
            db.append("acme", *id, 1, &[WorkflowEvent::Submitted {}, assigned()])
                .await;
            for event in db
                .store
                .history::<workflow_domain::Workflow>("acme", *id, 1)
                .await
                .unwrap()
            {
                h.publish(&event).await;
            }
        }
    };
    let ((), rebuild) = tokio::join!(writer, db.run(&["rebuild"]));
    assert!(rebuild.status.success(), "{}", printed(&rebuild));
    for id in &ids {
        h.wait_for_version(*id, 3).await;
    }
    running.stop().await;
    let verify = db.run(&["verify"]).await;
    assert!(verify.status.success(), "{}", printed(&verify));
}

#[tokio::test]
async fn rebuild_and_verify_read_only_workflows_from_a_store_shared_with_other_aggregates() {
    let db = databases().await;
    let workflow = Uuid::new_v4();
    db.append("acme", workflow, 0, &[created()]).await;
    // A workflow definition, and an event of a type no build knows yet, in the same store.
    db.store
        .append(event_store::Append {
            aggregate_type: Definition::TYPE,
            aggregate_id: Uuid::new_v4(),
            expected_version: 0,
            events: &[DefinitionEvent::Created {
                name: DefinitionName::parse("name", "出張申請").unwrap(),
                route: Route::of_users("route", ["bob"]).unwrap(),
            }],
            metadata: &support::metadata("acme"),
            command_id: Uuid::now_v7(),
            command_type: "CreateDefinition",
            occurred_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (event_id, tenant_id, aggregate_type, aggregate_id, version, event_type,
                             schema_version, payload, metadata, occurred_at)
         VALUES ($1, 'acme', 'invoice', $2, 1, 'InvoiceRaised', 1, '{}', '{}', now())",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::new_v4())
    .execute(db.store.pool())
    .await
    .unwrap();
    db.project("acme", &[workflow]).await;

    let verify = db.run(&["verify"]).await;
    assert!(verify.status.success(), "{}", printed(&verify));
    let rebuild = db.run(&["rebuild"]).await;
    assert!(rebuild.status.success(), "{}", printed(&rebuild));
    // The one workflow, and nothing to change: the read model was right.
    let out = stdout(&rebuild);
    assert!(out.contains("loaded 1 events"), "{out}");
    assert!(
        out.contains("wrote 0 workflows, 0 workflow_steps, 0 workflow_comments, 0 workflow_attachments; removed 0 workflows,"),
        "{out}"
    );
    assert_eq!(get(&db.read, "acme", workflow).await.version, 1);
}

/// The System Board's events, for a store that holds every context's.
mod board {
    use chrono::{DateTime, Utc};
    use system_board::{
        CveId, Cvss, Environment, PackageName, Packages, RawPackage, ScanEvent, ScanId,
        ScanTrigger, SystemEvent, SystemId, SystemName, TaskEvent, TaskKind, TaskPriority,
        TaskTitle, UserId,
    };
    use uuid::Uuid;

    fn user(id: &str) -> UserId {
        UserId::parse("user", id).unwrap()
    }

    fn packages() -> Packages {
        Packages::parse(
            "packages",
            [("log4j-core", "2.14.1"), ("openssl", "3.0.7")]
                .into_iter()
                .map(|(name, version)| RawPackage { name, version }),
            |i, f| format!("packages[{i}].{f}"),
        )
        .unwrap()
    }

    fn cvss() -> Cvss {
        Cvss::from_tenths("cvss", 100).unwrap()
    }

    pub fn registered() -> SystemEvent {
        SystemEvent::Registered {
            name: SystemName::parse("name", "Payroll API").unwrap(),
            owner: user("olga"),
            environment: Environment::Production,
            packages: packages(),
            registered_by: user("olga"),
        }
    }

    pub fn alert(scan: Uuid) -> SystemEvent {
        SystemEvent::SecurityAlertRaised {
            scan_id: ScanId::new(scan),
            cve: CveId::parse("cve", "CVE-2021-44228").unwrap(),
            cvss: cvss(),
            severity: cvss().severity(),
            package: PackageName::parse("package", "log4j-core").unwrap(),
        }
    }

    pub fn initiated(system: Uuid) -> ScanEvent {
        ScanEvent::Initiated {
            system_id: SystemId::new(system),
            packages: packages(),
            trigger: ScanTrigger::Registered,
        }
    }

    pub fn detected(system: Uuid) -> ScanEvent {
        ScanEvent::VulnerabilityDetected {
            cve: CveId::parse("cve", "CVE-2021-44228").unwrap(),
            cvss: cvss(),
            severity: cvss().severity(),
            package: PackageName::parse("package", "log4j-core").unwrap(),
            system_id: SystemId::new(system),
        }
    }

    pub fn task_created(system: Uuid, scan: Uuid) -> TaskEvent {
        TaskEvent::Created {
            kind: TaskKind::ScanReview,
            system_id: SystemId::new(system),
            scan_id: ScanId::new(scan),
            cve: None,
            title: TaskTitle::parse("title", "Review scan").unwrap(),
            priority: TaskPriority::Medium,
            due_at: DateTime::<Utc>::from_timestamp(1_750_000_000, 0).unwrap(),
        }
    }

    pub fn task_assigned() -> TaskEvent {
        TaskEvent::Assigned {
            assignee: user("sam"),
            assigned_by: user("mia"),
        }
    }
}

/// One system with an alert, its scan with a finding, and a task about it, of `tenant`.
struct Board {
    system: Uuid,
    scan: Uuid,
    task: Uuid,
}

impl Databases {
    /// Appends events of any context's aggregate, as `alice` of `tenant`.
    async fn append_of<A: Aggregate>(
        &self,
        tenant: &str,
        id: Uuid,
        expected_version: i64,
        events: &[A::Event],
    ) {
        self.store
            .append(event_store::Append {
                aggregate_type: A::TYPE,
                aggregate_id: id,
                expected_version,
                events,
                metadata: &support::metadata(tenant),
                command_id: Uuid::now_v7(),
                command_type: "Test",
                occurred_at: chrono::Utc::now(),
            })
            .await
            .expect("append");
    }

    /// A board of `tenant` in the store, projected into the read model as its live projectors
    /// would leave it.
    async fn board(&self, tenant: &str) -> Board {
        use system_board::{System, Task, VulnerabilityScan};
        let board = Board {
            system: Uuid::new_v4(),
            scan: Uuid::new_v4(),
            task: Uuid::new_v4(),
        };
        self.append_of::<System>(
            tenant,
            board.system,
            0,
            &[board::registered(), board::alert(board.scan)],
        )
        .await;
        self.append_of::<VulnerabilityScan>(
            tenant,
            board.scan,
            0,
            &[
                board::initiated(board.system),
                board::detected(board.system),
            ],
        )
        .await;
        self.append_of::<Task>(
            tenant,
            board.task,
            0,
            &[
                board::task_created(board.system, board.scan),
                board::task_assigned(),
            ],
        )
        .await;
        for event in self
            .store
            .history::<System>(tenant, board.system, 0)
            .await
            .unwrap()
        {
            projection::apply::<board_read_model::Systems>(&self.read, &event)
                .await
                .unwrap();
        }
        for event in self
            .store
            .history::<VulnerabilityScan>(tenant, board.scan, 0)
            .await
            .unwrap()
        {
            projection::apply::<board_read_model::Scans>(&self.read, &event)
                .await
                .unwrap();
        }
        for event in self
            .store
            .history::<Task>(tenant, board.task, 0)
            .await
            .unwrap()
        {
            projection::apply::<board_read_model::Tasks>(&self.read, &event)
                .await
                .unwrap();
        }
        board
    }

    async fn park(&self, id: Uuid) {
        sqlx::query(
            "INSERT INTO parked_aggregates (aggregate_id, tenant_id, reason) VALUES ($1, 'acme', 'test')",
        )
        .bind(id)
        .execute(&self.read)
        .await
        .unwrap();
    }

    async fn parked(&self, id: Uuid) -> bool {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM parked_aggregates WHERE aggregate_id = $1)",
        )
        .bind(id)
        .fetch_one(&self.read)
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_workflow_rebuild_and_verify_ignore_every_other_contexts_events_and_rows() {
    let db = databases().await;
    let workflow = Uuid::new_v4();
    db.append("acme", workflow, 0, &[created()]).await;
    db.project("acme", &[workflow]).await;
    let board = db.board("acme").await;
    // A parked task is the task projection's to settle, not the workflow rebuild's.
    db.park(board.task).await;
    // The board's rows differ from their events: none of the workflow commands' business.
    sqlx::query("UPDATE board_systems SET name = 'bent' WHERE id = $1")
        .bind(board.system)
        .execute(&db.read)
        .await
        .unwrap();

    for args in [&["verify"][..], &["verify", "--projection", "workflows"]] {
        let verify = db.run(args).await;
        assert!(verify.status.success(), "{args:?}: {}", printed(&verify));
        assert_eq!(stdout(&verify), "", "{args:?}");
    }
    let rebuild = db.run(&["rebuild"]).await;
    assert!(rebuild.status.success(), "{}", printed(&rebuild));
    let out = stdout(&rebuild);
    assert!(out.contains("loaded 1 events"), "{out}");
    assert!(
        out.contains(
            "switched: wrote 0 workflows, 0 workflow_steps, 0 workflow_comments, \
             0 workflow_attachments; removed 0 workflows, 0 workflow_steps, 0 workflow_comments, \
             0 workflow_attachments;"
        ),
        "{out}"
    );
    assert_eq!(get(&db.read, "acme", workflow).await.version, 1);
    // The board's tables and delivery state are as they were.
    assert_eq!(db.count("board_systems").await, 1);
    assert_eq!(db.count("board_alerts").await, 1);
    assert_eq!(db.count("board_scans").await, 1);
    assert_eq!(db.count("board_vulnerabilities").await, 1);
    assert_eq!(db.count("board_tasks").await, 1);
    assert!(db.parked(board.task).await, "the task stays parked");
    let name: String = sqlx::query_scalar("SELECT name FROM board_systems WHERE id = $1")
        .bind(board.system)
        .fetch_one(&db.read)
        .await
        .unwrap();
    assert_eq!(name, "bent");

    // The systems' verify is the one that sees it.
    let systems = db.run(&["verify", "--projection", "systems"]).await;
    assert_eq!(systems.status.code(), Some(1), "{}", printed(&systems));
    assert_eq!(
        stdout(&systems),
        format!(
            "board_systems {}: name is \"bent\" in the read model, \"Payroll API\" in the events\n",
            board.system
        )
    );
}

#[tokio::test]
async fn board_read_models_are_verified_and_rebuilt_from_the_store_one_projection_at_a_time() {
    let db = databases().await;
    let workflow = Uuid::new_v4();
    db.append("acme", workflow, 0, &[created()]).await;
    db.project("acme", &[workflow]).await;
    let board = db.board("acme").await;
    let other = db.board("globex").await;

    let clean = db.run(&["verify", "--projection", "all"]).await;
    assert!(clean.status.success(), "{}", printed(&clean));
    assert_eq!(stdout(&clean), "");

    // Doctored: a task's title, and an alert gone.
    sqlx::query("UPDATE board_tasks SET title = 'bent' WHERE id = $1")
        .bind(board.task)
        .execute(&db.read)
        .await
        .unwrap();
    sqlx::query("DELETE FROM board_alerts WHERE system_id = $1")
        .bind(board.system)
        .execute(&db.read)
        .await
        .unwrap();
    let tasks = db.run(&["verify", "--projection", "tasks"]).await;
    assert_eq!(tasks.status.code(), Some(1), "{}", printed(&tasks));
    assert_eq!(
        stdout(&tasks),
        format!(
            "board_tasks {}: title is \"bent\" in the read model, \"Review scan\" in the events\n",
            board.task
        )
    );
    let systems = db.run(&["verify", "--projection", "systems"]).await;
    assert_eq!(systems.status.code(), Some(1), "{}", printed(&systems));
    assert_eq!(
        stdout(&systems),
        format!(
            "board_alerts {} {} CVE-2021-44228 log4j-core: missing from the read model\n",
            board.system, board.scan
        )
    );
    // Scoped runs see only their scope; the other read models nothing.
    for args in [
        &["verify", "--projection", "tasks", "--tenant", "globex"][..],
        &[
            "verify",
            "--projection",
            "tasks",
            "--aggregate",
            &other.task.to_string(),
        ],
        &[
            "verify",
            "--projection",
            "systems",
            "--aggregate",
            &other.system.to_string(),
        ],
        &["verify", "--projection", "scans"],
        &["verify"],
    ] {
        let scoped = db.run(args).await;
        assert!(scoped.status.success(), "{args:?}: {}", printed(&scoped));
    }
    let one = db
        .run(&[
            "verify",
            "--projection",
            "tasks",
            "--aggregate",
            &board.task.to_string(),
        ])
        .await;
    assert_eq!(stdout(&one).lines().count(), 1, "{}", printed(&one));
    let all = db.run(&["verify", "--projection", "all"]).await;
    assert_eq!(all.status.code(), Some(1), "{}", printed(&all));
    assert_eq!(stdout(&all).lines().count(), 2, "{}", printed(&all));

    // Rebuilt: the doctored systems, and the tasks from a wiped table, with a parked task.
    let rebuild = db.run(&["rebuild", "--projection", "systems"]).await;
    assert!(rebuild.status.success(), "{}", printed(&rebuild));
    assert!(
        // The missing alert, and nothing that was right.
        stdout(&rebuild).contains(
            "switched: wrote 0 board_systems, 1 board_alerts; removed 0 board_systems, 0 board_alerts;"
        ),
        "{}",
        printed(&rebuild)
    );
    sqlx::query("DELETE FROM board_tasks")
        .execute(&db.read)
        .await
        .unwrap();
    db.park(board.task).await;
    db.park(workflow).await;
    let wiped = db.run(&["verify", "--projection", "tasks"]).await;
    assert_eq!(wiped.status.code(), Some(1), "{}", printed(&wiped));
    assert_eq!(stdout(&wiped).lines().count(), 2, "{}", printed(&wiped));
    assert!(
        stdout(&wiped).contains(&format!(
            "board_tasks {}: missing from the read model",
            board.task
        )),
        "{}",
        printed(&wiped)
    );
    let rebuild = db.run(&["rebuild", "--projection", "tasks"]).await;
    assert!(rebuild.status.success(), "{}", printed(&rebuild));
    let out = stdout(&rebuild);
    assert!(
        out.contains("switched: wrote 2 board_tasks; removed 0 board_tasks; unparked 1,"),
        "{out}"
    );
    assert!(!db.parked(board.task).await);
    assert!(
        db.parked(workflow).await,
        "a workflow is not the tasks' to unpark"
    );
    let title: String = sqlx::query_scalar("SELECT title FROM board_tasks WHERE id = $1")
        .bind(board.task)
        .fetch_one(&db.read)
        .await
        .unwrap();
    assert_eq!(title, "Review scan");

    let repaired = db.run(&["verify", "--projection", "all"]).await;
    assert!(repaired.status.success(), "{}", printed(&repaired));
    assert_eq!(stdout(&repaired), "");
    let everything = db.run(&["rebuild", "--projection", "all"]).await;
    assert!(everything.status.success(), "{}", printed(&everything));
    let out = stdout(&everything);
    for name in ["workflows:", "systems:", "scans:", "tasks:"] {
        assert!(out.contains(name), "{out}");
    }
    assert!(!db.parked(workflow).await);
    assert_eq!(db.count("parked_aggregates").await, 0);
}
