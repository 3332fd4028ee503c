//! Documents attached to a workflow. The domain records metadata only: the client uploads the
//! bytes to object storage first, and `storage_uri` points there.

use es_kernel::ValidationError;
use serde::{Deserialize, Serialize};

/// A validated document reference. JSON:
/// `{"file_name":"見積書.pdf","media_type":"application/pdf","size_bytes":52431,
///   "sha256":"9f86…","storage_uri":"s3://ringiflow/acme/9f86…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    file_name: String,
    media_type: String,
    size_bytes: u64,
    sha256: String,
    storage_uri: String,
}

/// An attachment as the client sent it, before parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawAttachment<'a> {
    pub file_name: &'a str,
    pub media_type: &'a str,
    pub size_bytes: u64,
    pub sha256: &'a str,
    pub storage_uri: &'a str,
}

/// The parts of an attachment an error can point at. Displays as the snake_case field name the
/// gRPC contract uses, so `|f| format!("attachment.{f}")` names e.g. `attachment.sha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentField {
    FileName,
    MediaType,
    SizeBytes,
    Sha256,
    StorageUri,
}

impl std::fmt::Display for AttachmentField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachmentField::FileName => "file_name",
            AttachmentField::MediaType => "media_type",
            AttachmentField::SizeBytes => "size_bytes",
            AttachmentField::Sha256 => "sha256",
            AttachmentField::StorageUri => "storage_uri",
        })
    }
}

impl Attachment {
    pub const MAX_FILE_NAME_CHARS: usize = 255;
    pub const MAX_SIZE_BYTES: u64 = 1 << 30;
    pub const MAX_STORAGE_URI_BYTES: usize = 2_048;

    /// Checks every part and names the first bad one through `field`. The media type and the
    /// digest are lowercased, so equal documents compare equal however the client spelled them.
    pub fn parse(
        raw: RawAttachment<'_>,
        field: impl Fn(AttachmentField) -> String,
    ) -> Result<Self, ValidationError> {
        let field = &field;
        let named = |part| move |message| ValidationError::new(field(part), message);
        Ok(Self {
            file_name: file_name(raw.file_name).map_err(named(AttachmentField::FileName))?,
            media_type: media_type(raw.media_type).map_err(named(AttachmentField::MediaType))?,
            size_bytes: size(raw.size_bytes).map_err(named(AttachmentField::SizeBytes))?,
            sha256: sha256(raw.sha256).map_err(named(AttachmentField::Sha256))?,
            storage_uri: storage_uri(raw.storage_uri)
                .map_err(named(AttachmentField::StorageUri))?,
        })
    }

    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    pub fn media_type(&self) -> &str {
        &self.media_type
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn storage_uri(&self) -> &str {
        &self.storage_uri
    }

    /// The scheme of `storage_uri`, e.g. `s3`. Which schemes a deployment accepts is its
    /// configuration, checked at the edge: recorded history stays readable whatever it says.
    pub fn storage_scheme(&self) -> &str {
        self.storage_uri
            .split_once("://")
            .map_or("", |(scheme, _)| scheme)
    }
}

/// A bare file name: whoever downloads it must not be tricked into another directory.
fn file_name(raw: &str) -> Result<String, &'static str> {
    if raw.is_empty() {
        return Err("must not be empty");
    }
    if raw.chars().count() > Attachment::MAX_FILE_NAME_CHARS {
        return Err("must be at most 255 characters");
    }
    if raw == "." || raw == ".." {
        return Err("must not be . or ..");
    }
    if raw.contains(['/', '\\']) {
        return Err("must not contain / or \\");
    }
    if let Some(message) = es_kernel::hidden_character(raw, false) {
        return Err(message);
    }
    Ok(raw.to_owned())
}

/// `type/subtype` with RFC 6838 restricted names; parameters such as `charset` are not kept.
fn media_type(raw: &str) -> Result<String, &'static str> {
    let restricted_name = |name: &str| {
        let mut chars = name.chars();
        (1..=127).contains(&name.len())
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match raw.split_once('/') {
        Some((kind, subtype)) if restricted_name(kind) && restricted_name(subtype) => {
            Ok(raw.to_ascii_lowercase())
        }
        _ => Err("must look like type/subtype, e.g. application/pdf"),
    }
}

fn size(raw: u64) -> Result<u64, &'static str> {
    if !(1..=Attachment::MAX_SIZE_BYTES).contains(&raw) {
        return Err("must be between 1 byte and 1 GiB");
    }
    Ok(raw)
}

fn sha256(raw: &str) -> Result<String, &'static str> {
    if raw.len() != 64 || !raw.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("must be 64 hexadecimal characters");
    }
    Ok(raw.to_ascii_lowercase())
}

fn storage_uri(raw: &str) -> Result<String, &'static str> {
    if raw.len() > Attachment::MAX_STORAGE_URI_BYTES {
        return Err("must be at most 2048 bytes");
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters");
    }
    let scheme_ok = |scheme: &str| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
    };
    match raw.split_once("://") {
        Some((scheme, rest)) if scheme_ok(scheme) && !rest.is_empty() => Ok(raw.to_owned()),
        _ => Err("must look like scheme://location, e.g. s3://bucket/key"),
    }
}
