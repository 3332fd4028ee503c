//! The commit notification: which rows a transaction changed, and to which version.

use uuid::Uuid;

/// PostgreSQL refuses NOTIFY payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

/// The NOTIFY payloads announcing `changed` (aggregate id, version its row reached): space-separated
/// `id:version` entries, split so each payload stays under PostgreSQL's limit.
pub fn payloads(changed: impl IntoIterator<Item = (Uuid, i64)>) -> Vec<String> {
    let mut payloads = vec![String::new()];
    for (id, version) in changed {
        let entry = format!("{}:{version}", id.simple());
        let current = payloads.last_mut().expect("never empty");
        if !current.is_empty() && current.len() + 1 + entry.len() > MAX_PAYLOAD {
            payloads.push(entry);
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(&entry);
        }
    }
    payloads
}

/// The entries of a payload; `None` if it is not a list of them (then every reader must look).
pub fn notification(payload: &str) -> Option<Vec<(Uuid, i64)>> {
    if payload.is_empty() {
        return None;
    }
    payload
        .split(' ')
        .map(|entry| {
            let (id, version) = entry.split_once(':')?;
            Some((Uuid::try_parse(id).ok()?, version.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_stay_under_the_limit() {
        let changed: Vec<(Uuid, i64)> = (0..600).map(|i| (Uuid::new_v4(), i)).collect();
        let payloads = payloads(changed.iter().copied());
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|payload| payload.len() < 8_000));
        let parsed: Vec<(Uuid, i64)> = payloads
            .iter()
            .flat_map(|p| notification(p).unwrap())
            .collect();
        assert_eq!(parsed, changed);
        assert_eq!(notification(""), None);
        assert_eq!(notification("not-a-list"), None);
    }
}
