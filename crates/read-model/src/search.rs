//! Text search over titles, descriptions and comments, in any script.
//!
//! A workflow matches when one of its texts contains the searched text, ignoring case:
//! `ILIKE '%text%'`, which the trigram indexes serve. A text of one or two characters has no
//! trigram to look up — the index could only hand back every row — so it is matched with
//! `strpos` over lower-cased texts instead, which no trigram index serves and the planner runs
//! over the tenant's rows. Both forms match exactly the same rows.
//!
//! Ranking: a title match above a description match above a comment match; within each, the
//! closer the whole text is to the searched one (trigram similarity), the higher; then the most
//! recently changed workflow first.

use crate::cursor::{Key, KeyKind, Order, SortDirection};
use crate::queries::{fetch_page, Listed, Page, QueryError};
use crate::views::WorkflowView;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

/// What to search for: trimmed, 1..=[`SearchText::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SearchTextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {} characters", SearchText::MAX_CHARS)]
    TooLong,
}

impl SearchText {
    pub const MAX_CHARS: usize = 200;
    /// pg_trgm's trigrams are three characters: a shorter text has none.
    const MIN_INDEXED_CHARS: usize = 3;

    pub fn parse(raw: &str) -> Result<Self, SearchTextError> {
        let text = raw.trim();
        match text.chars().count() {
            0 => Err(SearchTextError::Empty),
            n if n > Self::MAX_CHARS => Err(SearchTextError::TooLong),
            _ => Ok(Self(text.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An `ILIKE` pattern matching texts that contain this one literally.
    fn contained(&self) -> String {
        let mut pattern = String::with_capacity(self.0.len() + 2);
        pattern.push('%');
        for c in self.0.chars() {
            if matches!(c, '\\' | '%' | '_') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

/// The best of a workflow's texts that contain the searched text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchedField {
    Title,
    Description,
    /// One of its comments.
    Comment,
}

impl MatchedField {
    const ALL: [MatchedField; 3] = [
        MatchedField::Title,
        MatchedField::Description,
        MatchedField::Comment,
    ];

    /// 1 is the best.
    fn rank(self) -> i32 {
        match self {
            MatchedField::Title => 1,
            MatchedField::Description => 2,
            MatchedField::Comment => 3,
        }
    }

    /// The table, the workflow id column and the text column it is searched in.
    fn source(self) -> (&'static str, &'static str, &'static str) {
        match self {
            MatchedField::Title => ("workflows", "id", "title"),
            MatchedField::Description => ("workflows", "id", "description"),
            MatchedField::Comment => ("workflow_comments", "workflow_id", "body"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub workflow: WorkflowView,
    pub matched: MatchedField,
}

impl Listed for SearchHit {
    const COLUMNS: &'static str = ", r.field";

    fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let rank: i32 = row.try_get("field")?;
        let matched = MatchedField::ALL
            .into_iter()
            .find(|field| field.rank() == rank)
            .ok_or_else(|| sqlx::Error::Decode(format!("unexpected field rank {rank}").into()))?;
        Ok(Self {
            workflow: WorkflowView::from_row(row)?,
            matched,
        })
    }
}

/// The score puts each field's matches in a band of their own above the next field's —
/// [4, 5] for a title, [2, 3] for a description, [0, 1] for a comment — and orders them inside
/// it by similarity, which is between 0 and 1.
const RELEVANCE: Order = Order {
    name: "relevance",
    keys: &[
        Key {
            sql: "r.score",
            kind: KeyKind::Float,
        },
        Key {
            sql: "w.updated_at",
            kind: KeyKind::Timestamp,
        },
    ],
    direction: SortDirection::Descending,
};

/// `first` (1..=[`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE)) of the tenant's workflows that contain
/// `text`, best first, after the `after` cursor of a previous page of the same search.
pub async fn search_workflows(
    pool: &PgPool,
    tenant_id: &str,
    text: &SearchText,
    first: u32,
    after: Option<&str>,
) -> Result<Page<SearchHit>, QueryError> {
    fetch_page(
        pool,
        |query| push_matches(query, tenant_id, text),
        &RELEVANCE,
        first,
        after,
    )
    .await
}

/// `FROM … WHERE …` of the matching workflows `w`, each with its best match `r`: the field
/// and the score.
fn push_matches<'a>(
    query: &mut QueryBuilder<'a, Postgres>,
    tenant_id: &'a str,
    text: &'a SearchText,
) {
    query.push(
        " FROM (SELECT DISTINCT ON (m.id) m.id, m.field,
                       (6 - 2 * m.field)::float8 + m.similarity AS score
                FROM (",
    );
    for (i, field) in MatchedField::ALL.into_iter().enumerate() {
        let (table, id, column) = field.source();
        if i > 0 {
            query.push(" UNION ALL ");
        }
        query
            .push(format_args!(
                "SELECT {id} AS id, {rank} AS field, similarity({column}, ",
                rank = field.rank()
            ))
            .push_bind(text.as_str())
            .push(format_args!(
                ") AS similarity FROM {table} WHERE tenant_id = "
            ))
            .push_bind(tenant_id)
            .push(" AND ");
        if text.as_str().chars().count() >= SearchText::MIN_INDEXED_CHARS {
            query
                .push(format_args!("{column} ILIKE "))
                .push_bind(text.contained());
        } else {
            query
                .push(format_args!("strpos(lower({column}), lower("))
                .push_bind(text.as_str())
                .push(")) > 0");
        }
    }
    query
        .push(
            ") m
                ORDER BY m.id, m.field, m.similarity DESC) r
              JOIN workflows w ON w.id = r.id
         WHERE w.tenant_id = ",
        )
        .push_bind(tenant_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(SearchText::parse("  出張 ").unwrap().as_str(), "出張");
        assert_eq!(SearchText::parse(" \t\n"), Err(SearchTextError::Empty));
        assert!(SearchText::parse(&"出".repeat(SearchText::MAX_CHARS)).is_ok());
        assert_eq!(
            SearchText::parse(&"出".repeat(SearchText::MAX_CHARS + 1)),
            Err(SearchTextError::TooLong)
        );
    }

    #[test]
    fn wildcards_in_the_text_are_matched_literally() {
        let text = SearchText::parse(r"50%_off\now").unwrap();
        assert_eq!(text.contained(), r"%50\%\_off\\now%");
    }
}
