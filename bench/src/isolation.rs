//! Isolation (issue 9): what one tenant's abusive requests cost another tenant. A victim reads
//! a workflow through the gateway at a steady rate (below its own rate limit), first alone, then
//! while an attacker of another tenant sends the abusive documents of the hardening issue
//! (300 dashboards, 100 waits at a minimum version, 60 histories, 100 searches, 40 mutations, a
//! query 25 levels deep) and the most expensive query the limits still allow, from `attackers`
//! concurrent connections. Both go through a gateway with the production defaults (rate limits
//! included): the limits are what is measured.

use crate::client::GraphQl;
use crate::stats::{Latency, LatencySummary};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The victim's request rate: a person clicking fast, well under 100 requests/s.
pub const VICTIM_RATE_PER_S: u32 = 50;

#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackCounts {
    pub sent: u64,
    /// Refused by the limits of one request (INVALID_ARGUMENT before anything ran).
    pub refused: u64,
    /// Refused by the rate limit (HTTP 429).
    pub throttled: u64,
    /// Allowed and answered (the most expensive query the limits allow).
    pub answered: u64,
    pub other: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IsolationResult {
    pub attackers: usize,
    pub victim_rate_per_s: u32,
    pub alone: LatencySummary,
    pub under_attack: LatencySummary,
    pub victim_errors: u64,
    pub attack: AttackCounts,
    /// Victim p50 / p99 under attack over alone.
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
}

/// The attacker's documents, cycled through: each of the issue's abusive shapes, then the
/// most expensive query the limits allow.
fn documents(workflow_id: &str) -> Vec<String> {
    let aliased = |operation: &str, count: usize, field: &str| {
        let fields: String = (0..count).map(|i| format!(" a{i}: {field}")).collect();
        format!("{operation} {{{fields} }}")
    };
    vec![
        aliased("", 300, "dashboard { overdue }"),
        aliased(
            "",
            100,
            &format!(r#"workflow(id: "{workflow_id}", minVersion: 1000000) {{ id }}"#),
        ),
        aliased(
            "",
            60,
            &format!(r#"workflowHistory(id: "{workflow_id}") {{ version }}"#),
        ),
        aliased("", 100, r#"searchWorkflows(text: "a") { totalCount }"#),
        aliased(
            "mutation",
            40,
            &format!(r#"submitWorkflow(input: {{ workflowId: "{workflow_id}" }}) {{ version }}"#),
        ),
        format!(
            "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
            "ofType { ".repeat(20),
            "} ".repeat(20)
        ),
        r#"{ dashboard { overdue } searchWorkflows(text: "出張") { totalCount }
             workflows(first: 100) { totalCount edges { node { id title status } } } }"#
            .to_owned(),
    ]
}

pub async fn run(
    victim: GraphQl,
    victim_workflow: String,
    attacker: GraphQl,
    attacker_token: String,
    attackers: usize,
    duration: Duration,
) -> IsolationResult {
    let (alone, alone_errors) = paced_reads(&victim, &victim_workflow, duration).await;
    let stop = Arc::new(AtomicBool::new(false));
    let documents = Arc::new(documents(&victim_workflow));
    let workers: Vec<_> = (0..attackers)
        .map(|worker| {
            let (attacker, token, stop, documents) = (
                attacker.clone(),
                attacker_token.clone(),
                stop.clone(),
                documents.clone(),
            );
            tokio::spawn(async move {
                let mut counts = AttackCounts::default();
                let mut next = worker;
                while !stop.load(Ordering::Relaxed) {
                    let document = &documents[next % documents.len()];
                    next += 1;
                    counts.sent += 1;
                    match attacker.raw(&token, document).await {
                        Ok((429, _)) => counts.throttled += 1,
                        Ok((_, body)) if refused(&body) => counts.refused += 1,
                        Ok((200, body)) if body.get("data").is_some_and(|d| !d.is_null()) => {
                            counts.answered += 1
                        }
                        _ => counts.other += 1,
                    }
                }
                counts
            })
        })
        .collect();
    let (under_attack, attacked_errors) = paced_reads(&victim, &victim_workflow, duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut attack = AttackCounts::default();
    for worker in workers {
        if let Ok(counts) = worker.await {
            attack.sent += counts.sent;
            attack.refused += counts.refused;
            attack.throttled += counts.throttled;
            attack.answered += counts.answered;
            attack.other += counts.other;
        }
    }
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| (a / b * 100.0).round() / 100.0);
    IsolationResult {
        attackers,
        victim_rate_per_s: VICTIM_RATE_PER_S,
        p50_ratio: ratio(under_attack.p50_ms, alone.p50_ms),
        p99_ratio: ratio(under_attack.p99_ms, alone.p99_ms),
        alone,
        under_attack,
        victim_errors: alone_errors + attacked_errors,
        attack,
    }
}

/// An answer whose errors all say INVALID_ARGUMENT and that ran nothing.
fn refused(body: &Value) -> bool {
    body.get("errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| {
            !errors.is_empty()
                && errors
                    .iter()
                    .all(|e| e["extensions"]["code"] == json!("INVALID_ARGUMENT"))
        })
}

/// The victim's reads, one every `1 / VICTIM_RATE_PER_S` (open loop: a slow answer does not
/// delay the next request), for `duration`.
async fn paced_reads(victim: &GraphQl, id: &str, duration: Duration) -> (LatencySummary, u64) {
    let interval = Duration::from_secs(1) / VICTIM_RATE_PER_S;
    let mut ticker = tokio::time::interval(interval);
    let end = Instant::now() + duration;
    let mut requests = Vec::new();
    while Instant::now() < end {
        ticker.tick().await;
        let (victim, id) = (victim.clone(), id.to_owned());
        requests.push(tokio::spawn(async move {
            let started = Instant::now();
            victim.get(&id).await.map(|_| started.elapsed())
        }));
    }
    let (mut latency, mut errors) = (Latency::default(), 0);
    for request in requests {
        match request.await {
            Ok(Ok(elapsed)) => latency.record(elapsed),
            _ => errors += 1,
        }
    }
    (latency.summary(), errors)
}
