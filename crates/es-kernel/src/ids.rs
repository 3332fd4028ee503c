//! Ids derived from what caused them, so a reaction that runs twice (a redelivered message, a
//! replay, a second replica) names the same command and the same new aggregate both times, and
//! the store's command idempotency turns the repeat into a no-op.

use uuid::Uuid;

/// Namespace of every derived id (UUID v5).
const DERIVED: Uuid = Uuid::from_u128(0x6f1b_2c84_5d3e_4a97_b0c6_18e2_7d49_a35f);

/// The id that `cause` (an event id, usually) gives to its effect named `purpose`, e.g.
/// `derived_id(event.event_id, "scan-review-task")`. Different purposes of one cause get
/// different ids; the same pair always gets the same id.
pub fn derived_id(cause: Uuid, purpose: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + purpose.len());
    name.extend_from_slice(cause.as_bytes());
    name.extend_from_slice(purpose.as_bytes());
    Uuid::new_v5(&DERIVED, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_cause_and_purpose_give_the_same_id_and_nothing_else_does() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(derived_id(a, "task"), derived_id(a, "task"));
        assert_ne!(derived_id(a, "task"), derived_id(a, "scan"));
        assert_ne!(derived_id(a, "task"), derived_id(b, "task"));
        assert_ne!(derived_id(a, "task"), a);
    }
}
