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
    let acme: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
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
    assert!(
        out.contains("switched 201 workflows and 201 steps"),
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
    let (good, bad) = (Uuid::new_v4(), Uuid::new_v4());
    db.append("acme", good, 0, &[created()]).await;
    db.project("acme", &[good]).await;
    // The store takes what the domain decided; this history the projection cannot follow.
    db.append("acme", bad, 0, &[created(), WorkflowEvent::Approved {}])
        .await;
    sqlx::query("UPDATE workflows SET title = 'bent' WHERE id = $1")
        .bind(good)
        .execute(&db.read)
        .await
        .unwrap();

    let rebuild = db.run(&["rebuild"]).await;
    assert_eq!(rebuild.status.code(), Some(1), "{}", printed(&rebuild));
    let out = stdout(&rebuild);
    assert!(
        out.contains(&format!("(workflow {bad} version 2) cannot be applied")),
        "{out}"
    );
    assert!(out.contains("rebuild abandoned"), "{out}");
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
    assert!(
        out.contains(&format!("workflows {bad}: missing from the read model")),
        "{out}"
    );
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
    assert!(
        stdout(&rebuild).contains("switched 1 workflows"),
        "{}",
        printed(&rebuild)
    );
    assert_eq!(get(&db.read, "acme", workflow).await.version, 1);
}
