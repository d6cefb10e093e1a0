//! Deciding a file's content type on the server: from its extension, checked against its magic
//! bytes. A client's declared type is never trusted, and a file whose bytes contradict its name
//! (an HTML page named `.png`) is refused.

/// Why a content was refused: its bytes do not match its extension.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the content of {file_name} is {sniffed}, which does not match its extension .{extension}")]
pub struct ContentTypeError {
    file_name: String,
    extension: String,
    sniffed: String,
}

/// Binary types and their extensions: their magic bytes must be present.
const BINARY: &[(&str, &[&str])] = &[
    ("image/jpeg", &["jpg", "jpeg", "jpe"]),
    ("image/png", &["png"]),
    ("image/gif", &["gif"]),
    ("image/bmp", &["bmp"]),
    ("image/tiff", &["tif", "tiff"]),
    ("image/webp", &["webp"]),
    ("image/heic", &["heic"]),
    ("image/vnd.microsoft.icon", &["ico"]),
    ("application/pdf", &["pdf"]),
    ("application/zip", &["zip"]),
    ("application/gzip", &["gz", "tgz"]),
    ("application/x-7z-compressed", &["7z"]),
    ("application/vnd.rar", &["rar"]),
    ("audio/mpeg", &["mp3"]),
    ("audio/x-wav", &["wav"]),
    ("audio/ogg", &["ogg"]),
    ("video/mp4", &["mp4"]),
    ("audio/m4a", &["m4a"]),
    ("video/quicktime", &["mov"]),
    ("video/webm", &["webm"]),
    ("video/x-msvideo", &["avi"]),
    ("application/msword", &["doc"]),
    ("application/vnd.ms-excel", &["xls"]),
    ("application/vnd.ms-powerpoint", &["ppt"]),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx"],
    ),
    ("application/vnd.oasis.opendocument.text", &["odt"]),
    ("application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
    ("application/epub+zip", &["epub"]),
    ("application/rtf", &["rtf"]),
];

/// Textual types and their extensions: their bytes need only not turn out to be something else.
const TEXTUAL: &[(&str, &[&str])] = &[
    ("image/svg+xml", &["svg"]),
    ("text/plain", &["txt", "text"]),
    ("text/markdown", &["md"]),
    ("text/csv", &["csv"]),
    ("text/tab-separated-values", &["tsv"]),
    ("application/json", &["json"]),
    ("application/xml", &["xml"]),
    ("text/html", &["html", "htm"]),
    ("text/css", &["css"]),
    ("text/javascript", &["js"]),
    ("application/yaml", &["yaml", "yml"]),
    ("text/calendar", &["ics"]),
    ("text/vcard", &["vcf"]),
    ("message/rfc822", &["eml"]),
];

/// The type an extension stands for, if it is one we know.
pub fn type_for_extension(extension: &str) -> Option<&'static str> {
    let found = known_types().find(|(e, _)| e.eq_ignore_ascii_case(extension));
    found.map(|(_, t)| t)
}

/// Every extension the server knows, with its type: what a client must declare for such a file
/// (the browser console reads it, so it declares exactly what the server expects).
pub fn known_types() -> impl Iterator<Item = (&'static str, &'static str)> {
    let known = BINARY.iter().chain(TEXTUAL);
    known.flat_map(|(t, exts)| exts.iter().map(move |e| (*e, *t)))
}

/// What the bytes say they are: binary magic numbers, plus the markup types that browsers would
/// render (HTML, SVG), which `infer` does not look for.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let head = &bytes[..bytes.len().min(1024)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    let starts = |prefix: &str| text.starts_with(prefix);
    if starts("<!doctype html") || starts("<html") || starts("<script") {
        Some("text/html")
    } else if starts("<svg") || (starts("<?xml") && text.contains("<svg")) {
        Some("image/svg+xml")
    } else if starts("{\\rtf") {
        Some("application/rtf")
    } else {
        infer::get(bytes).map(|kind| kind.mime_type())
    }
}

/// Whether the sniffed type is the declared one, or what `infer` reports for it: container formats
/// by their container (a .docx is a zip), and a few types by other names than the IANA registry's.
fn same_family(declared: &str, sniffed: &str) -> bool {
    let reported = match declared {
        d if d.starts_with("application/vnd.openxmlformats") => "application/zip",
        d if d.starts_with("application/vnd.oasis") => "application/zip",
        "application/epub+zip" => "application/zip",
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => {
            "application/x-ole-storage"
        }
        "image/vnd.microsoft.icon" => "image/x-icon",
        "audio/x-wav" => "audio/wav",
        "audio/m4a" | "video/mp4" => "audio/x-m4a",
        "application/svg+xml" => "image/svg+xml",
        "application/xml" => "text/xml",
        _ => declared,
    };
    sniffed == declared || sniffed == reported
}

/// Decides the content type of a file from its extension and its bytes.
///
/// - A known extension gives the type, provided the bytes agree: a binary type must carry its
///   magic number, and a textual type must not turn out to be something else.
/// - An unknown extension takes what the bytes say, or `application/octet-stream`.
pub fn decide_content_type(
    file_name: &str,
    extension: &str,
    bytes: &[u8],
) -> Result<&'static str, ContentTypeError> {
    let sniffed = sniff(bytes);
    let mismatch = |s: &str| ContentTypeError {
        file_name: file_name.to_owned(),
        extension: extension.to_owned(),
        sniffed: s.to_owned(),
    };
    match (type_for_extension(extension), sniffed) {
        (Some(declared), Some(s)) if same_family(declared, s) => Ok(declared),
        (Some(_), Some(s)) => Err(mismatch(s)),
        (Some(d), None) if BINARY.iter().any(|(t, _)| *t == d) && !bytes.is_empty() => {
            Err(mismatch("not recognisable"))
        }
        (Some(declared), None) => Ok(declared),
        (None, Some(s)) => Ok(s),
        (None, None) => Ok("application/octet-stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    #[test]
    fn extension_and_magic_agree() {
        assert_eq!(decide_content_type("a.png", "png", PNG), Ok("image/png"));
        assert_eq!(decide_content_type("a.JPG", "JPG", JPEG), Ok("image/jpeg"));
        assert_eq!(
            decide_content_type("a.txt", "txt", b"hello"),
            Ok("text/plain")
        );
        assert_eq!(
            decide_content_type("a.svg", "svg", b"<?xml version=\"1.0\"?><svg></svg>"),
            Ok("image/svg+xml")
        );
        assert_eq!(
            decide_content_type("r.pdf", "pdf", b"%PDF-1.7\n"),
            Ok("application/pdf")
        );
    }

    #[test]
    fn contradicting_bytes_are_refused() {
        let html = b"<!DOCTYPE html><html><script>alert(1)</script>";
        assert!(decide_content_type("x.png", "png", html).is_err());
        assert!(decide_content_type("x.txt", "txt", html).is_err());
        assert!(decide_content_type("x.png", "png", b"plain words").is_err());
        assert!(decide_content_type("x.jpg", "jpg", PNG).is_err());
    }

    #[test]
    fn unknown_extensions_take_what_the_bytes_say() {
        assert_eq!(decide_content_type("x", "", PNG), Ok("image/png"));
        assert_eq!(
            decide_content_type("x.bin", "bin", b"\x00\x01"),
            Ok("application/octet-stream")
        );
        assert_eq!(decide_content_type("x", "", b"<html>"), Ok("text/html"));
    }
}
