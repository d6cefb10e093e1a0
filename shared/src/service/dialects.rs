//! Settings of the compatible APIs that come from configuration (Crafter Profile's allow-list and
//! file limit). They live on [`App`](super::App) so every dialect reads them from the same place
//! whether it runs in the local server or in a Lambda function.

/// Crafter Profile's default `validAttachmentMimeTypes`.
pub const DEFAULT_CRAFTER_ALLOWED_TYPES: [&str; 6] = [
    "image/bmp",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/svg+xml",
];

/// Crafter Profile's upload rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrafterSettings {
    /// Content types an upload may have (Crafter's `validAttachmentMimeTypes`).
    pub allowed_types: Vec<String>,
    /// The file limit; the request limit (`Limits::max_upload_bytes`) caps it further.
    pub max_file_bytes: usize,
}

impl Default for CrafterSettings {
    fn default() -> Self {
        Self {
            allowed_types: DEFAULT_CRAFTER_ALLOWED_TYPES.map(String::from).into(),
            // Crafter Profile's default upload limit.
            max_file_bytes: 5 * 1024 * 1024,
        }
    }
}
