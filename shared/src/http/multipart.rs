//! multipart/form-data parsing for every upload route, with every limit explicit: the whole
//! body, each text field, the number of parts, and each part's headers.

use bytes::Bytes;
use futures_util::TryStreamExt;

use super::Request;

/// How many parts a form may have: far more than any real upload, far fewer than an attack.
pub const MAX_PARTS: usize = 64;
/// The largest text field.
pub const MAX_TEXT_FIELD: usize = 16 * 1024;
/// The most bytes before the first boundary.
pub const MAX_PREAMBLE: usize = 8 * 1024;
/// The most header bytes, and headers, one part may carry.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
pub const MAX_PART_HEADERS: usize = 16;

#[derive(Debug, Clone)]
pub struct FilePart {
    pub file_name: Option<String>,
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
pub struct Form {
    pub files: Vec<FilePart>,
    pub texts: Vec<(String, String)>,
}

impl Form {
    /// The last value of a text field.
    pub fn text(&self, name: &str) -> Option<&str> {
        let last = self.texts.iter().rfind(|(k, _)| k == name);
        last.map(|(_, v)| v.as_str())
    }

    /// The form's one file part; else why not: "the form has" `none` or `many`.
    pub fn one_file(&self, none: &str, many: &str) -> Result<&FilePart, String> {
        match self.files.as_slice() {
            [one] => Ok(one),
            [] => Err(format!("the form has {none}")),
            _ => Err(format!("the form has {many}")),
        }
    }

    /// Refuses a text field that is not one of `known` (names separated by spaces), for an API
    /// whose forms, like its JSON bodies, take only the fields they document: a misspelled label
    /// (`titel`) must not be dropped in silence.
    pub fn only(&self, known: &str) -> Result<(), MultipartError> {
        let is_known = |k: &str| known.split(' ').any(|n| n == k);
        let taken = known.replace(' ', ", ");
        match self.texts.iter().find(|(k, _)| !is_known(k)) {
            Some((k, _)) => Err(MultipartError::UnknownField(k.clone(), taken)),
            None => Ok(()),
        }
    }
}

/// Why a body is not an acceptable form. The message names the problem for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the request must be multipart/form-data with a boundary")]
    NotMultipart,
    #[error("the multipart body is malformed: {0}")]
    Malformed(String),
    #[error("the form has more than {MAX_PREAMBLE} bytes before its first boundary")]
    PreambleTooLong,
    #[error("the form has more than {MAX_PARTS} parts")]
    TooManyParts,
    #[error("the field {0} is longer than {MAX_TEXT_FIELD} bytes")]
    FieldTooLarge(String),
    #[error("a part's headers are larger than {MAX_PART_HEADER_BYTES} bytes or more than {MAX_PART_HEADERS}")]
    HeadersTooLarge,
    #[error("the field {0} is not valid UTF-8 text")]
    NotText(String),
    #[error("the form has a field {0:?} this operation does not take (it takes {1})")]
    UnknownField(String, String),
}

/// Parses a request's form. `file_fields` names the parts that carry files; other parts are text.
pub async fn parse(req: Request, file_fields: &[&str]) -> Result<Form, MultipartError> {
    let ct = req.headers().get(http::header::CONTENT_TYPE);
    let ct = ct.and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = multer::parse_boundary(ct).map_err(|_| MultipartError::NotMultipart)?;
    let body = req.into_body();
    // The preamble (bytes before the first boundary) is legal MIME, but nothing a client needs;
    // a long one is only a way to make the parser scan.
    let marker = format!("--{boundary}");
    let window = &body[..body.len().min(MAX_PREAMBLE + marker.len())];
    if !window.windows(marker.len()).any(|w| w == marker.as_bytes()) && body.len() > MAX_PREAMBLE {
        return Err(MultipartError::PreambleTooLong);
    }
    // The body is whole and already within the request limit: multer needs no size limit of
    // its own (a limit of the body's own length, say, could never be reached).
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let malformed = |e: multer::Error| MultipartError::Malformed(e.to_string());
    let mut form = Form::default();
    while let Some(field) = mp.next_field().await.map_err(malformed)? {
        if form.files.len() + form.texts.len() == MAX_PARTS {
            return Err(MultipartError::TooManyParts);
        }
        let h = field.headers();
        let header_bytes: usize = h.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > MAX_PART_HEADER_BYTES || h.len() > MAX_PART_HEADERS {
            return Err(MultipartError::HeadersTooLarge);
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        // A body given whole yields each field as one chunk, kept as it is (`Field::bytes`
        // would copy it again); a parser that splits a field anyway still works.
        let chunks: Vec<Bytes> = field.try_collect().await.map_err(malformed)?;
        let bytes = match <[Bytes; 1]>::try_from(chunks) {
            Ok([whole]) => whole,
            Err(chunks) => chunks.concat().into(),
        };
        if file_fields.contains(&name.as_str()) {
            form.files.push(FilePart { file_name, bytes });
        } else {
            if bytes.len() > MAX_TEXT_FIELD {
                return Err(MultipartError::FieldTooLarge(name));
            }
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| MultipartError::NotText(name.clone()))?;
            form.texts.push((name, text));
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ct: Option<&str>, body: Bytes) -> Request {
        let mut r = Request::new(body);
        if let Some(ct) = ct {
            let ct = ct.parse().unwrap();
            r.headers_mut().insert(http::header::CONTENT_TYPE, ct);
        }
        r
    }

    /// Parses a body whose parts are separated by `--XX`, with `file` as the file field.
    async fn parse_xx(body: impl Into<Bytes>) -> Result<Form, MultipartError> {
        let ct = Some("multipart/form-data; boundary=XX");
        parse(req(ct, body.into()), &["file"]).await
    }

    #[tokio::test]
    async fn files_and_texts() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
                    Content-Type: text/plain\r\n\r\nabc\r\n--XX--\r\n";
        let f = parse_xx(body).await.unwrap();
        assert_eq!(f.text("title"), Some("Hello"));
        assert_eq!(f.files.len(), 1);
        assert_eq!(f.files[0].file_name.as_deref(), Some("a.txt"));
        assert_eq!(&f.files[0].bytes[..], b"abc");
    }

    #[tokio::test]
    async fn file_bytes_that_resemble_the_boundary_arrive_whole() {
        // Near-boundaries inside a file must neither cut it nor lose a byte.
        let content = b"a\r\n--XY\r\n--X\r\n-b\r\n-".repeat(1000);
        let mut body =
            b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n"
                .to_vec();
        body.extend_from_slice(&content);
        body.extend_from_slice(b"\r\n--XX--\r\n");
        let f = parse_xx(body).await.unwrap();
        assert_eq!(f.files.len(), 1);
        assert_eq!(&f.files[0].bytes[..], &content[..]);
    }

    #[tokio::test]
    async fn only_known_text_fields_pass() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n\
                    abc\r\n--XX--\r\n";
        let f = parse_xx(body).await.unwrap();
        assert_eq!(f.only("file title"), Ok(()));
        let e = f.only("file type").unwrap_err();
        assert_eq!(
            e,
            MultipartError::UnknownField("title".into(), "file, type".into())
        );
        assert_eq!(
            e.to_string(),
            "the form has a field \"title\" this operation does not take (it takes file, type)"
        );
    }

    #[tokio::test]
    async fn malformed_bodies_are_errors() {
        assert_eq!(
            parse(req(Some("multipart/form-data"), Bytes::new()), &["file"])
                .await
                .unwrap_err(),
            MultipartError::NotMultipart
        );
        assert_eq!(
            parse(req(None, Bytes::new()), &["file"]).await.unwrap_err(),
            MultipartError::NotMultipart
        );
        let unclosed =
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc";
        assert!(matches!(
            parse_xx(unclosed).await.unwrap_err(),
            MultipartError::Malformed(_)
        ));
        let mut many = String::new();
        for i in 0..(MAX_PARTS + 1) {
            many.push_str(&format!(
                "--XX\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n"
            ));
        }
        many.push_str("--XX--\r\n");
        assert_eq!(
            parse_xx(many).await.unwrap_err(),
            MultipartError::TooManyParts
        );
    }
}
