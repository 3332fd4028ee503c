//! Values every context shares, and the macros that build a context's own newtypes. Wire
//! input becomes these through `parse` at the edge, so the aggregates only ever see valid values
//! ("parse, don't validate").
//!
//! Deserialising skips the checks on purpose: serde reads recorded history, which was parsed
//! when it was first accepted and must stay readable even if a limit tightens later.

use chrono::NaiveDate;

/// Invalid input, naming the offending field as the client spelled it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Displays a single-field newtype as its inner value; used by the newtype macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __display_inner {
    ($name:ident) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

/// A trimmed text of `min..=max` characters that refuses control (other than line breaks and
/// tabs), bidi and invisible characters. The declaring crate depends on `serde`.
#[macro_export]
macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, min = $min:expr, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(field: &str, raw: &str) -> Result<Self, $crate::ValidationError> {
                $crate::__private::bounded_text(field, raw, $min, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        $crate::__display_inner!($name);
    };
}

/// A non-empty identifier of at most `max_bytes` bytes, without whitespace or hidden
/// characters, kept exactly as given. The declaring crate depends on `serde`.
#[macro_export]
macro_rules! identifier_newtype {
    ($(#[$doc:meta])* $name:ident, max_bytes = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_BYTES: usize = $max;

            pub fn parse(field: &str, raw: &str) -> Result<Self, $crate::ValidationError> {
                $crate::__private::identifier(field, raw, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        $crate::__display_inner!($name);
    };
}

/// An aggregate id. The declaring crate depends on `serde`.
#[macro_export]
macro_rules! uuid_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name($crate::__private::Uuid);

        impl $name {
            pub fn new(id: $crate::__private::Uuid) -> Self {
                Self(id)
            }

            pub fn parse(field: &str, raw: &str) -> Result<Self, $crate::ValidationError> {
                $crate::__private::Uuid::parse_str(raw)
                    .map(Self)
                    .map_err(|_| $crate::ValidationError::new(field, "must be a UUID"))
            }

            pub fn as_uuid(&self) -> $crate::__private::Uuid {
                self.0
            }
        }

        $crate::__display_inner!($name);
    };
}

/// Characters that change how text is shown without being seen: bidirectional overrides and
/// isolates (U+202E makes `exe.pdf` read as `fdp.exe`), zero-width spaces and joiners used to
/// split words past filters, the BOM, line/paragraph separators that break one-line displays,
/// and tag characters. ZWJ (U+200D) and ZWNJ (U+200C) stay allowed: emoji sequences and
/// several scripts need them.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'                   // Arabic letter mark
            | '\u{180E}'             // Mongolian vowel separator
            | '\u{200B}'             // zero-width space
            | '\u{200E}'..='\u{200F}' // left-to-right / right-to-left marks
            | '\u{2028}'..='\u{202E}' // separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{2066}'..='\u{206F}' // bidi isolates, deprecated format characters
            | '\u{FEFF}'             // zero-width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
            | '\u{E0000}'..='\u{E007F}' // tags
    )
}

/// Why `text` must be refused, if it holds a character no one means to type: a control
/// character other than the line breaks and tabs prose may hold, or an invisible one.
pub fn hidden_character(text: &str, prose: bool) -> Option<&'static str> {
    text.chars().find_map(|c| {
        if c.is_control() && !(prose && matches!(c, '\n' | '\r' | '\t')) {
            Some("must not contain control characters")
        } else if is_invisible_format(c) {
            Some("must not contain invisible or text-direction characters")
        } else {
            None
        }
    })
}

#[doc(hidden)]
pub fn bounded_text(
    field: &str,
    raw: &str,
    min: usize,
    max: usize,
) -> Result<String, ValidationError> {
    let text = raw.trim();
    let chars = text.chars().count();
    if chars < min {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if chars > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if let Some(message) = hidden_character(text, true) {
        return Err(ValidationError::new(field, message));
    }
    Ok(text.to_owned())
}

#[doc(hidden)]
pub fn identifier(field: &str, raw: &str, max_bytes: usize) -> Result<String, ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if raw.len() > max_bytes {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_bytes} bytes"),
        ));
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(ValidationError::new(field, "must not contain whitespace"));
    }
    if let Some(message) = hidden_character(raw, false) {
        return Err(ValidationError::new(field, message));
    }
    Ok(raw.to_owned())
}

text_newtype!(
    /// A person's display name as the identity provider reports it.
    DisplayName, min = 1, max = 200
);

identifier_newtype!(
    /// A user id as issued by the identity provider (the token's `sub`).
    UserId, max_bytes = 128
);
identifier_newtype!(
    /// The tenant every event, row and query is scoped to.
    TenantId, max_bytes = 128
);
identifier_newtype!(
    /// A role from the access token, e.g. `manager`. Case-sensitive, as the token spells it.
    Role, max_bytes = 64
);

impl Role {
    /// A tenant's administrators; each context says what they may do beyond others.
    pub const ADMIN: &'static str = "admin";
    /// The identity of the platform's own reactions (process managers, watchers): the commands
    /// only they may send check for it.
    pub const SYSTEM: &'static str = "system";
    /// A gateway's credential for its one upstream stream of every tenant's read-model changes
    /// (a context's change feed), which it filters per subscriber. Grants nothing
    /// else: no command checks for it, and every other query stays within the token's tenant.
    pub const CHANGE_FEED: &'static str = "change-feed";
}

/// The calendar dates RingiFlow accepts: four-digit years, as `YYYY-MM-DD` can spell them.
/// Every store and client holds these (PostgreSQL's `date` starts in 4713 BC, JavaScript's
/// `Date` ends in 275760), so an accepted date can never stall a reader downstream.
pub const DATES: std::ops::RangeInclusive<NaiveDate> = NaiveDate::from_yo_opt(1, 1).expect("valid")
    ..=NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid");

/// A `YYYY-MM-DD` date within [`DATES`]: the one way dates enter from the wire.
pub fn parse_date(field: &str, raw: &str) -> Result<NaiveDate, ValidationError> {
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| ValidationError::new(field, "must be a date as YYYY-MM-DD"))?;
    if !DATES.contains(&date) {
        return Err(ValidationError::new(
            field,
            "must be between 0001-01-01 and 9999-12-31",
        ));
    }
    Ok(date)
}

/// Who issues a command: taken from the verified access token, never from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub display_name: DisplayName,
    pub roles: Vec<Role>,
}

impl Actor {
    pub fn holds(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }

    pub fn is_admin(&self) -> bool {
        self.holds_named(Role::ADMIN)
    }

    pub fn is_system(&self) -> bool {
        self.holds_named(Role::SYSTEM)
    }

    fn holds_named(&self, name: &str) -> bool {
        self.roles.iter().any(|role| role.as_str() == name)
    }
}
