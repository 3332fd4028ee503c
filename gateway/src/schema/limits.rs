//! What one operation may cost, checked before anything runs.
//!
//! * Before validation, [`Documents`] measures the parsed document with every fragment
//!   expanded once (memoised, so a fragment spread twice per level cannot make the measuring
//!   itself exponential): root fields, aliases included, per operation; selections per
//!   operation; nesting of fields and fragments. async-graphql's validation expands fragments
//!   without memoising and recurses through fragment chains, so these bounds also keep the
//!   validation of a hostile document cheap and its recursion shallow.
//! * During validation, async-graphql adds up a cost for every field (`limit_complexity`) and
//!   measures the depth (`limit_depth`). A field without a cost of its own costs 1 plus its
//!   subfields: data already at hand. A field that calls a backend costs what that call costs
//!   the backend (the constants below, in those units), and a list costs its page size times
//!   the cost of one item, so the budget bounds the backend work one request can cause.
//!
//! A refusal names the limit; it is INVALID_ARGUMENT like every error of the document itself
//! (see [`crate::errors`]): the same request never succeeds, a smaller one does.

use crate::errors::request_error;
use async_graphql::parser::parse_query;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Pos, ServerError, ServerResult};
use std::collections::HashMap;
use std::sync::Mutex;

/// The cost budget of one operation. A page of 100 workflows with every field of each costs
/// about 6,700; the abusive requests of issue 9 cost far more (see the tests).
pub(crate) const MAX_COMPLEXITY: usize = 10_000;

/// RingiFlow's own types nest at most six fields deep; GraphiQL's introspection query, with
/// its chains of `ofType`, reaches about fourteen.
pub(crate) const MAX_DEPTH: usize = 16;

/// Root fields of one operation, aliases included. Room for two full batches of `workflow(id)`
/// lookups, which the DataLoader makes cheap; every costly field is held far below this by its
/// cost. What this bounds is the per-field work of the gateway itself.
pub(crate) const MAX_ROOT_FIELDS: usize = 200;

/// Selections of one operation with its fragments expanded: 200 lookups of a dozen fields
/// each. The introspection query has a few hundred.
const MAX_SELECTIONS: usize = 5_000;

/// Nesting of fields, fragment spreads and inline fragments: the field depth plus room for the
/// fragments of the introspection query. Also bounds every recursion over the document.
const MAX_NESTING: usize = 2 * MAX_DEPTH;

/// A batched `workflow(id)` lookup: its share of one BatchGetWorkflows call.
pub(crate) const LOOKUP: usize = 10;
/// A read at a minimum version, which may hold a query-svc call for up to 2 s.
pub(crate) const WAIT: usize = 1_000;
/// A list page and its count, both served by indexes.
pub(crate) const LIST: usize = 100;
/// A lookup by id that has no batch call (a System Board `system(id)`): a query-svc call of
/// its own, priced as one, like a list page.
pub(crate) const GET: usize = LIST;
/// The items a list answered whole rather than a page at a time (a system's vulnerabilities,
/// a causal chain) is priced at: a full page.
pub(crate) const UNPAGED: Option<i32> = Some(100);
/// A search: a trigram index lookup, or for one or two characters a scan of the tenant.
pub(crate) const SEARCH: usize = 1_000;
/// A history, read from the event store through query-svc's pool of four connections: at most
/// three per operation, so one request cannot occupy them all.
pub(crate) const HISTORY: usize = 3_000;
/// The dashboard: several aggregates over the tenant's workflows.
pub(crate) const DASHBOARD: usize = 1_000;
/// A command: a transaction in the event store.
pub(crate) const COMMAND: usize = 500;

/// The page size query-svc uses when a list asks for none (an explicit `null`); also the
/// GraphQL default of `first`.
pub(crate) fn default_page() -> Option<i32> {
    Some(proto::limits::DEFAULT_PAGE_SIZE as i32)
}

/// A backend call costing `call` that answers up to `first` items costing `item` each. Every
/// sum saturates at just above the budget, so no cost can overflow and every over-budget
/// operation is refused.
pub(crate) fn page(call: usize, first: Option<i32>, item: usize) -> usize {
    let items = first.map_or(proto::limits::DEFAULT_PAGE_SIZE as usize, |first| {
        usize::try_from(first).unwrap_or(0)
    });
    call.saturating_add(items.saturating_mul(item))
        .min(MAX_COMPLEXITY + 1)
}

/// A backend call costing `call` whose answer costs `item`.
pub(crate) fn single(call: usize, item: usize) -> usize {
    call.saturating_add(item).min(MAX_COMPLEXITY + 1)
}

/// Distinct documents kept parsed and measured.
const CACHED_DOCUMENTS: usize = 1_000;
/// Longer documents are parsed every time: the cache is for the few documents an application
/// sends over and over, which are short.
const CACHED_DOCUMENT_BYTES: usize = 16 * 1024;

/// Parses documents and refuses those whose shape exceeds the limits above, before
/// validation; remembers the documents that passed, by their text. Clients send the same few
/// documents with different variables, and parsing was the gateway's largest cost of its own
/// on a single lookup. The shape depends on the text alone, so a remembered document needs no
/// new measure.
#[derive(Default)]
pub(crate) struct Documents {
    passed: Mutex<HashMap<String, ExecutableDocument>>,
}

impl Documents {
    /// The document `query` is, if it is one within the limits.
    pub(crate) fn checked(&self, query: &str) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.passed.lock().unwrap().get(query) {
            return Ok(document.clone());
        }
        let document = parse_query(query).map_err(|error| request_error(error.into()))?;
        check_shape(&document)?;
        if query.len() <= CACHED_DOCUMENT_BYTES {
            let mut passed = self.passed.lock().unwrap();
            // A flood of distinct documents can only make the cache useless, never unbounded:
            // when full it starts over, and the documents in use come back at once.
            if passed.len() >= CACHED_DOCUMENTS {
                passed.clear();
            }
            passed.insert(query.to_owned(), document.clone());
        }
        Ok(document)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.passed.lock().unwrap().len()
    }
}

/// The measure of a selection set with its fragments expanded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shape {
    /// Fields at its own level.
    fields: usize,
    /// Fields at every level.
    selections: usize,
    /// Levels of fields and fragments below it.
    nesting: usize,
}

impl Shape {
    fn add(&mut self, other: Shape) {
        self.fields = self.fields.saturating_add(other.fields);
        self.selections = self.selections.saturating_add(other.selections);
        self.nesting = self.nesting.max(other.nesting);
    }
}

fn check_shape(document: &ExecutableDocument) -> ServerResult<()> {
    let mut measure = Measure {
        document,
        fragments: HashMap::new(),
    };
    // Every fragment, used or not: validation walks them all.
    for name in document.fragments.keys() {
        measure.fragment(name.as_str(), 0)?;
    }
    for (_, operation) in document.operations.iter() {
        let shape = measure.selection_set(&operation.node.selection_set.node, 0)?;
        if shape.fields > MAX_ROOT_FIELDS {
            return Err(refusal(
                format!(
                    "an operation may select at most {MAX_ROOT_FIELDS} root fields, aliases \
                     included; this one selects {}",
                    shape.fields
                ),
                operation.pos,
            ));
        }
        if shape.selections > MAX_SELECTIONS {
            return Err(refusal(
                format!(
                    "an operation may select at most {MAX_SELECTIONS} fields with its fragments \
                     expanded; this one selects {}",
                    shape.selections
                ),
                operation.pos,
            ));
        }
    }
    Ok(())
}

struct Measure<'a> {
    document: &'a ExecutableDocument,
    /// Each fragment's shape, measured once however often it is spread.
    fragments: HashMap<&'a str, Shape>,
}

impl<'a> Measure<'a> {
    /// The shape of `set`, found `depth` levels deep.
    fn selection_set(&mut self, set: &'a SelectionSet, depth: usize) -> ServerResult<Shape> {
        let mut shape = Shape::default();
        for item in &set.items {
            // Checked before descending, so no recursion over the document goes deeper.
            if depth >= MAX_NESTING {
                return Err(too_deep(item.pos));
            }
            let (inner, pos) = match &item.node {
                Selection::Field(field) => {
                    let below = self.selection_set(&field.node.selection_set.node, depth + 1)?;
                    let shape = Shape {
                        fields: 1,
                        selections: below.selections.saturating_add(1),
                        nesting: below.nesting + 1,
                    };
                    (shape, field.pos)
                }
                Selection::InlineFragment(fragment) => {
                    let below = self.selection_set(&fragment.node.selection_set.node, depth + 1)?;
                    let shape = Shape {
                        nesting: below.nesting + 1,
                        ..below
                    };
                    (shape, fragment.pos)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    (self.fragment(name, depth + 1)?, spread.pos)
                }
            };
            if depth + inner.nesting > MAX_NESTING {
                return Err(too_deep(pos));
            }
            shape.add(inner);
        }
        Ok(shape)
    }

    /// The shape of a spread of fragment `name` found `depth` levels deep, including the level
    /// of the spread itself.
    fn fragment(&mut self, name: &'a str, depth: usize) -> ServerResult<Shape> {
        if let Some(shape) = self.fragments.get(name) {
            return Ok(*shape);
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            // An unknown fragment: validation names it.
            return Ok(Shape::default());
        };
        // A spread inside its own fragment counts nothing while it is measured; validation
        // refuses the cycle.
        self.fragments.insert(name, Shape::default());
        let below = self.selection_set(&fragment.node.selection_set.node, depth)?;
        let shape = Shape {
            nesting: below.nesting + 1,
            ..below
        };
        self.fragments.insert(name, shape);
        Ok(shape)
    }
}

fn too_deep(pos: Pos) -> ServerError {
    refusal(
        format!("fields and fragments may nest at most {MAX_NESTING} levels deep"),
        pos,
    )
}

fn refusal(message: String, pos: Pos) -> ServerError {
    request_error(ServerError::new(message, Some(pos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str) -> ServerResult<()> {
        check_shape(&parse_query(query).unwrap())
    }

    fn aliases(count: usize, field: &str) -> String {
        let fields: String = (0..count).map(|i| format!(" a{i}: {field}")).collect();
        format!("{{{fields} }}")
    }

    #[test]
    fn passed_documents_are_remembered_refused_ones_never_and_the_memory_is_bounded() {
        let documents = Documents::default();
        for _ in 0..2 {
            assert!(documents.checked("{ x }").is_ok());
        }
        assert_eq!(documents.len(), 1);

        let refused = aliases(MAX_ROOT_FIELDS + 1, "x");
        for _ in 0..2 {
            let error = documents.checked(&refused).unwrap_err();
            assert!(error.message.contains("root fields"), "{}", error.message);
        }
        let error = documents.checked("{ x").unwrap_err();
        assert_eq!(
            error.extensions.unwrap().get("code"),
            Some(&async_graphql::Value::from("INVALID_ARGUMENT"))
        );
        assert_eq!(documents.len(), 1, "a refusal is never remembered");

        for i in 0..CACHED_DOCUMENTS + 10 {
            assert!(documents.checked(&format!("{{ a{i}: x }}")).is_ok());
        }
        assert!(documents.len() <= CACHED_DOCUMENTS);
    }

    #[test]
    fn root_fields_count_aliases_and_fragments() {
        assert!(shape(&aliases(MAX_ROOT_FIELDS, "__typename")).is_ok());
        let error = shape(&aliases(MAX_ROOT_FIELDS + 1, "__typename")).unwrap_err();
        assert!(
            error.message.contains("at most 200 root fields"),
            "{}",
            error.message
        );
        assert_eq!(
            error.extensions.unwrap().get("code"),
            Some(&async_graphql::Value::from("INVALID_ARGUMENT"))
        );
        let through_fragments = format!(
            "{{ ...F ... on Query {{ x: __typename }} }} fragment F on Query {}",
            aliases(MAX_ROOT_FIELDS, "__typename")
        );
        assert!(shape(&through_fragments).is_err());
    }

    #[test]
    fn fragments_spread_twice_per_level_are_measured_once_each() {
        // 2^40 selections if expanded naively; measured in 40 steps.
        let mut query = String::from("{ ...F0 }");
        for level in 0..40 {
            query.push_str(&format!(
                " fragment F{level} on Query {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        query.push_str(" fragment F40 on Query { __typename }");
        let error = shape(&query).unwrap_err();
        assert!(
            error.message.contains("nest at most") || error.message.contains("fields with"),
            "{}",
            error.message
        );
        // The same bomb below one root field, shallow enough to nest but far too large.
        let mut query = String::from(r#"{ __type(name: "Query") { ...F0 } }"#);
        for level in 0..20 {
            query.push_str(&format!(
                " fragment F{level} on __Type {{ ...F{next} ...F{next} }}",
                next = level + 1
            ));
        }
        query.push_str(" fragment F20 on __Type { name }");
        let error = shape(&query).unwrap_err();
        assert!(error.message.contains("fields with its fragments expanded"));
    }

    #[test]
    fn long_fragment_chains_are_refused_even_unused() {
        let mut query = String::from("{ __typename }");
        for link in 0..5_000 {
            query.push_str(&format!(
                " fragment F{link} on Query {{ ...F{} }}",
                link + 1
            ));
        }
        query.push_str(" fragment F5000 on Query { __typename }");
        let error = shape(&query).unwrap_err();
        assert!(error.message.contains("nest at most"), "{}", error.message);
    }

    #[test]
    fn fragment_cycles_are_left_to_validation() {
        assert!(
            shape("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }").is_ok()
        );
    }

    #[test]
    fn pages_cost_their_size_times_an_item_and_saturate() {
        assert_eq!(page(LIST, Some(100), 60), 6_100);
        assert_eq!(page(LIST, None, 10), LIST + 200);
        assert_eq!(page(LIST, Some(-5), 10), LIST);
        assert_eq!(page(LIST, Some(i32::MAX), usize::MAX), MAX_COMPLEXITY + 1);
        assert_eq!(single(usize::MAX, 1), MAX_COMPLEXITY + 1);
    }
}
