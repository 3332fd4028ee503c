//! Keyset pagination, one mechanism for every list. A list is ordered by its sort keys, all in
//! one direction, then by the workflow id in that direction too; a cursor holds the keys and id
//! of the row a page ended with. A single row comparison then starts the next page right after
//! that row — even among rows that share the sort keys, and however rows were added since —
//! and an index on `(tenant_id, keys…, id)` serves both the order and the comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use std::ops::RangeInclusive;
use uuid::Uuid;

/// The years of every time a query binds. PostgreSQL holds `timestamptz` from 4713 BC to
/// 294276 AD and `date` from 4713 BC to 5874897 AD, chrono ±262143 years: a time outside both
/// fails the statement, which would surface as an internal error. Years 1..=9999 are what RFC
/// 3339 writes, far inside both, so a time a caller sends is refused as bad input instead.
pub(crate) const YEARS: RangeInclusive<i32> = 1..=9999;

/// Whether the read model can compare `at` with what it stores.
pub(crate) fn in_range(at: DateTime<Utc>) -> bool {
    YEARS.contains(&at.year())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortDirection {
    Ascending,
    Descending,
}

impl SortDirection {
    fn sql(self) -> &'static str {
        match self {
            SortDirection::Ascending => "ASC",
            SortDirection::Descending => "DESC",
        }
    }

    /// The comparison that selects the rows after the cursor's row.
    fn after(self) -> &'static str {
        match self {
            SortDirection::Ascending => ">",
            SortDirection::Descending => "<",
        }
    }
}

/// The SQL type of a sort key, which says how its value is read, bound and put in a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Timestamp,
    Date,
    Int,
    Float,
}

/// A sort key: an expression over the list's rows (`w` is the workflow) that is never NULL for
/// a row of the list, since a row comparison with NULL selects nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    pub sql: &'static str,
    pub kind: KeyKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum KeyValue {
    Timestamp(DateTime<Utc>),
    Date(NaiveDate),
    Int(i32),
    Float(f64),
}

impl KeyKind {
    /// Reads what [`KeyValue::to_i64`] wrote; `None` if no value of this kind writes it, or if
    /// it is a time outside [`YEARS`], which no stored row has: a forged cursor.
    fn decode(self, raw: i64) -> Option<KeyValue> {
        Some(match self {
            KeyKind::Timestamp => KeyValue::Timestamp(
                DateTime::from_timestamp_micros(raw).filter(|at| in_range(*at))?,
            ),
            KeyKind::Date => KeyValue::Date(
                NaiveDate::from_num_days_from_ce_opt(raw.try_into().ok()?)
                    .filter(|date| YEARS.contains(&date.year()))?,
            ),
            KeyKind::Int => KeyValue::Int(raw.try_into().ok()?),
            KeyKind::Float => KeyValue::Float(f64::from_bits(raw as u64)),
        })
    }

    fn read(self, row: &PgRow, column: &str) -> Result<KeyValue, sqlx::Error> {
        Ok(match self {
            KeyKind::Timestamp => KeyValue::Timestamp(row.try_get(column)?),
            KeyKind::Date => KeyValue::Date(row.try_get(column)?),
            KeyKind::Int => KeyValue::Int(row.try_get(column)?),
            KeyKind::Float => KeyValue::Float(row.try_get(column)?),
        })
    }
}

impl KeyValue {
    /// Exact: microseconds are PostgreSQL's `timestamptz` precision and a float keeps its bits,
    /// so the comparison after a cursor neither repeats nor skips the row it came from.
    fn to_i64(self) -> i64 {
        match self {
            KeyValue::Timestamp(at) => at.timestamp_micros(),
            KeyValue::Date(date) => i64::from(date.num_days_from_ce()),
            KeyValue::Int(value) => i64::from(value),
            KeyValue::Float(value) => value.to_bits() as i64,
        }
    }

    fn bind(self, query: &mut QueryBuilder<'_, Postgres>) {
        match self {
            KeyValue::Timestamp(at) => query.push_bind(at),
            KeyValue::Date(date) => query.push_bind(date),
            KeyValue::Int(value) => query.push_bind(value),
            KeyValue::Float(value) => query.push_bind(value),
        };
    }
}

/// Where a page ended: the sort keys and id of its last row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cursor {
    pub keys: Vec<KeyValue>,
    pub id: Uuid,
}

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Order {
    /// Written into every cursor with the direction, so a cursor of another list or sort is
    /// refused instead of starting a page at a meaningless place.
    pub name: &'static str,
    pub keys: &'static [Key],
    pub direction: SortDirection,
}

impl Order {
    /// The keys as the columns `k0`, `k1`, … for [`Order::cursor_of`], after other columns.
    pub fn key_columns(&self) -> String {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, key)| format!(", {} AS k{i}", key.sql))
            .collect()
    }

    /// The cursor of a row selected with [`Order::key_columns`].
    pub fn cursor_of(&self, row: &PgRow) -> Result<Cursor, sqlx::Error> {
        let keys = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| key.kind.read(row, &format!("k{i}")))
            .collect::<Result<_, _>>()?;
        Ok(Cursor {
            keys,
            id: row.try_get("id")?,
        })
    }

    /// Appends the condition that keeps the rows after the cursor's row.
    pub fn push_after(&self, query: &mut QueryBuilder<'_, Postgres>, cursor: &Cursor) {
        query.push(" AND (");
        for key in self.keys {
            query.push(key.sql).push(", ");
        }
        query.push("w.id) ").push(self.direction.after()).push(" (");
        for value in &cursor.keys {
            value.bind(query);
            query.push(", ");
        }
        query.push_bind(cursor.id).push(")");
    }

    pub fn push_order_by(&self, query: &mut QueryBuilder<'_, Postgres>) {
        let direction = self.direction.sql();
        query.push(" ORDER BY ");
        for key in self.keys {
            query.push(format_args!("{} {direction}, ", key.sql));
        }
        query.push(format_args!("w.id {direction}"));
    }

    pub fn encode(&self, cursor: &Cursor) -> String {
        let mut text = format!("{}:{}", self.name, self.direction.sql());
        for value in &cursor.keys {
            text.push_str(&format!(":{}", value.to_i64()));
        }
        text.push_str(&format!(":{}", cursor.id));
        URL_SAFE_NO_PAD.encode(text)
    }

    /// `None` for anything [`Order::encode`] did not produce for this very order.
    pub fn decode(&self, raw: &str) -> Option<Cursor> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let mut parts = text.split(':');
        if parts.next()? != self.name || parts.next()? != self.direction.sql() {
            return None;
        }
        let keys = self
            .keys
            .iter()
            .map(|key| key.kind.decode(parts.next()?.parse().ok()?))
            .collect::<Option<_>>()?;
        let id = Uuid::parse_str(parts.next()?).ok()?;
        parts.next().is_none().then_some(Cursor { keys, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[Key] = &[
        Key {
            sql: "r.score",
            kind: KeyKind::Float,
        },
        Key {
            sql: "w.created_at",
            kind: KeyKind::Timestamp,
        },
        Key {
            sql: "w.due_date",
            kind: KeyKind::Date,
        },
        Key {
            sql: "w.rank",
            kind: KeyKind::Int,
        },
    ];

    fn order(name: &'static str, direction: SortDirection) -> Order {
        Order {
            name,
            keys: KEYS,
            direction,
        }
    }

    #[test]
    fn cursors_round_trip_exactly() {
        let cursor = Cursor {
            keys: vec![
                KeyValue::Float(4.123_456_789_012_345),
                KeyValue::Timestamp(
                    DateTime::from_timestamp_micros(1_715_000_000_123_456).unwrap(),
                ),
                KeyValue::Date(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()),
                KeyValue::Int(-3),
            ],
            id: Uuid::new_v4(),
        };
        let order = order("test", SortDirection::Ascending);
        let encoded = order.encode(&cursor);
        assert!(encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(order.decode(&encoded), Some(cursor));
    }

    #[test]
    fn garbage_and_cursors_of_another_order_are_refused() {
        let cursor = Cursor {
            keys: vec![
                KeyValue::Float(1.0),
                KeyValue::Timestamp(DateTime::from_timestamp_micros(0).unwrap()),
                KeyValue::Date(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()),
                KeyValue::Int(1),
            ],
            id: Uuid::new_v4(),
        };
        let ascending = order("test", SortDirection::Ascending);
        let other_direction = order("test", SortDirection::Descending).encode(&cursor);
        let other_name = order("other", SortDirection::Ascending).encode(&cursor);
        let id = cursor.id;
        for garbage in [
            "",
            "!!!",
            "bm90LWEtY3Vyc29y",
            &other_direction,
            &other_name,
            &URL_SAFE_NO_PAD.encode(format!("test:ASC:1:2:3:{id}")),
            &URL_SAFE_NO_PAD.encode(format!("test:ASC:1:2:3:4:5:{id}")),
            &URL_SAFE_NO_PAD.encode(format!("test:ASC:1:2:x:4:{id}")),
            &URL_SAFE_NO_PAD.encode(format!("test:ASC:1:2:3:99999999999:{id}")),
            &URL_SAFE_NO_PAD.encode("test:ASC:1:2:3:4:not-a-uuid"),
        ] {
            assert_eq!(ascending.decode(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn cursors_with_times_no_row_can_have_are_refused() {
        let id = Uuid::new_v4();
        let ascending = order("test", SortDirection::Ascending);
        for year in [-5000, 0, 10_000] {
            let date = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
            let micros = date
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_micros();
            let days = date.num_days_from_ce();
            for forged in [
                format!("test:ASC:1:{micros}:3:4:{id}"),
                format!("test:ASC:1:2:{days}:4:{id}"),
            ] {
                let forged = URL_SAFE_NO_PAD.encode(forged);
                assert_eq!(ascending.decode(&forged), None, "year {year}");
            }
        }
        let last_day = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        let accepted = format!("test:ASC:1:2:{}:4:{id}", last_day.num_days_from_ce());
        assert!(ascending
            .decode(&URL_SAFE_NO_PAD.encode(accepted))
            .is_some());
    }
}
