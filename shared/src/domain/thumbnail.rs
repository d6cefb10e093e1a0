//! Thumbnails, as pure functions (bytes in, PNG bytes out): a downscaled copy of an image, or a
//! small icon of the file's family for anything else. Decoding is bounded from the header on: an
//! image beyond [`MAX_IMAGE_SIDE`] or [`MAX_DECODE_BYTES`] is refused before any pixel buffer
//! exists, so a decompression bomb costs a header read, not 40 GB.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, Rgba, RgbaImage};

/// The longest side of a thumbnail; smaller images keep their size.
pub const THUMBNAIL_MAX_SIDE: u32 = 256;
/// The widest or tallest image we decode.
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most memory decoded pixels may take (a 12-megapixel RGB photo takes 36 MiB).
pub const MAX_DECODE_BYTES: u64 = 64 * 1024 * 1024;
/// Every thumbnail and icon is a PNG.
pub const THUMBNAIL_CONTENT_TYPE: &str = "image/png";
/// The side of an icon.
pub const ICON_SIDE: u32 = 64;

/// Why an image gave no thumbnail. The service logs it and stores the image icon instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbnailError {
    #[error("{0} is not an image type this service decodes")]
    NotDecodable(String),
    #[error("the image is beyond the decoding limits: {0}")]
    TooLarge(String),
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    #[error("the thumbnail could not be encoded: {0}")]
    Encode(String),
}

/// The families of files that get an icon rather than a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IconFamily {
    /// An image we do not decode (TIFF, HEIC, SVG…) or could not decode.
    Image,
    Document,
    Text,
    Archive,
    Audio,
    Video,
    /// The last family: the service's icon cache has one place per family up to it.
    Other,
}

impl IconFamily {
    /// The family of a content type, as decided by [`crate::domain::decide_content_type`].
    pub fn of(content_type: &str) -> Self {
        let ct = content_type.to_ascii_lowercase();
        let (top, sub) = ct.split_once('/').unwrap_or((ct.as_str(), ""));
        let office = ["vnd.ms-", "vnd.openxmlformats", "vnd.oasis"];
        match (top, sub) {
            ("image", _) => Self::Image,
            ("audio", _) => Self::Audio,
            ("video", _) => Self::Video,
            ("text" | "message", _) | (_, "json" | "xml" | "yaml") => Self::Text,
            (_, "zip" | "gzip" | "x-7z-compressed" | "vnd.rar" | "x-tar" | "x-bzip2")
            | (_, "x-xz" | "zstd") => Self::Archive,
            (_, "pdf" | "rtf" | "msword" | "epub+zip") => Self::Document,
            (_, s) if office.iter().any(|p| s.starts_with(p)) => Self::Document,
            _ => Self::Other,
        }
    }

    /// The band colour that tells the families apart.
    fn colour(self) -> [u8; 3] {
        match self {
            Self::Image => [0x2e, 0x9e, 0x5b],
            Self::Document => [0xd9, 0x3f, 0x3f],
            Self::Text => [0x3f, 0x6f, 0xd9],
            Self::Archive => [0xc9, 0x8a, 0x1b],
            Self::Audio => [0x8e, 0x44, 0xad],
            Self::Video => [0xe0, 0x5a, 0x9b],
            Self::Other => [0x7f, 0x8c, 0x8d],
        }
    }
}

/// The image formats we decode, by content type: those the image crate is built to read (its
/// features in Cargo.toml: the ones browsers upload). Others get an icon, without an attempt.
pub fn decodable_format(content_type: &str) -> Option<ImageFormat> {
    ImageFormat::from_mime_type(content_type).filter(ImageFormat::reading_enabled)
}

fn decode_error(e: image::ImageError) -> ThumbnailError {
    match e {
        image::ImageError::Limits(l) => ThumbnailError::TooLarge(l.to_string()),
        other => ThumbnailError::Corrupt(other.to_string()),
    }
}

/// A PNG thumbnail of an image. Refuses, before decoding a pixel, an image beyond
/// [`MAX_IMAGE_SIDE`] or [`MAX_DECODE_BYTES`].
pub fn image_thumbnail(content_type: &str, bytes: &[u8]) -> Result<Vec<u8>, ThumbnailError> {
    let format = decodable_format(content_type)
        .ok_or_else(|| ThumbnailError::NotDecodable(content_type.to_owned()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits);
    // Only the header is read here; the limits on sides apply already.
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (w, h) = decoder.dimensions();
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        return Err(ThumbnailError::TooLarge(format!(
            "{w}x{h} pixels would take {} bytes, more than {MAX_DECODE_BYTES}",
            decoder.total_bytes()
        )));
    }
    // Phone photos are stored sideways with an EXIF rotation; thumbnails show them upright.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    img.apply_orientation(orientation);
    // At most THUMBNAIL_MAX_SIDE on the longest side, the aspect ratio kept (rounded, never
    // below 1 px); smaller images keep their size.
    if img.width().max(img.height()) > THUMBNAIL_MAX_SIDE {
        img = img.thumbnail(THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE);
    }
    // 8 bits per channel: what every viewer shows, and the smallest PNG.
    let img = if img.color().has_alpha() {
        DynamicImage::ImageRgba8(img.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(img.to_rgb8())
    };
    encode_png(&img)
}

fn encode_png(img: &DynamicImage) -> Result<Vec<u8>, ThumbnailError> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| ThumbnailError::Encode(e.to_string()))?;
    Ok(out.into_inner())
}

/// The icon of a family: a page with a folded corner and a band of the family's colour, as a
/// [`ICON_SIDE`]-pixel PNG. Drawn, not embedded, so there is no binary asset to keep in sync.
pub fn icon_png(family: IconFamily) -> Result<Vec<u8>, ThumbnailError> {
    let (left, right, top, bottom, corner) = (12, 52, 4, 60, 12);
    let [r, g, b] = family.colour();
    let edge = Rgba([0x9a, 0xa0, 0xa6, 0xff]);
    let paper = Rgba([0xff, 0xff, 0xff, 0xff]);
    let band = Rgba([r, g, b, 0xff]);
    let img = RgbaImage::from_fn(ICON_SIDE, ICON_SIDE, |x, y| {
        if !(left..=right).contains(&x) || !(top..=bottom).contains(&y) {
            return Rgba([0, 0, 0, 0]);
        }
        // The folded corner: cut the top-right triangle, draw the fold's diagonal.
        let (dx, dy) = (right - x, y - top);
        let fold = dx + dy == corner || (dx.max(dy) == corner && dx.min(dy) < corner);
        // A few grey "lines of text" above the band.
        let text = (18..=30).contains(&y) && y % 4 == 2 && (left + 6..=right - 6).contains(&x);
        if dx + dy < corner {
            Rgba([0, 0, 0, 0])
        } else if fold || text || x == left || x == right || y == top || y == bottom {
            edge
        } else if (38..=50).contains(&y) {
            band
        } else {
            paper
        }
    });
    encode_png(&DynamicImage::ImageRgba8(img))
}

#[cfg(test)]
mod tests {
    use super::*;
    use IconFamily::*;

    fn png_of(w: u32, h: u32, alpha: bool) -> Vec<u8> {
        let img = if alpha {
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(w, h, Rgba([10, 20, 30, 128])))
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30])))
        };
        encode_png(&img).unwrap()
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG whose header claims `w`x`h` RGBA pixels, with a tiny IDAT: a decompression bomb.
    fn bomb_png(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            out.extend_from_slice(&body);
            out.extend_from_slice(&crc32(&body).to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        // zlib of a few zero bytes (stored block).
        chunk(
            b"IDAT",
            &[
                0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0, 4, 0, 1,
            ],
        );
        chunk(b"IEND", &[]);
        out
    }

    /// The thumbnail of a `w`x`h` image, decoded back from its PNG.
    fn thumbnail_of(w: u32, h: u32, alpha: bool) -> DynamicImage {
        let png = image_thumbnail("image/png", &png_of(w, h, alpha)).unwrap();
        image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap()
    }

    #[test]
    fn images_shrink_to_256_keeping_their_aspect() {
        let back = thumbnail_of(600, 300, false);
        assert_eq!((back.width(), back.height()), (256, 128));
        assert!(!back.color().has_alpha());

        let tall = thumbnail_of(300, 1000, true);
        assert_eq!((tall.width(), tall.height()), (77, 256));
        let back = thumbnail_of(40, 20, true);
        assert_eq!(
            (back.width(), back.height()),
            (40, 20),
            "small images are not enlarged"
        );
        assert!(back.color().has_alpha());
        assert_eq!(back.to_rgba8().get_pixel(0, 0), &Rgba([10, 20, 30, 128]));
    }

    #[test]
    fn sizes_round_and_never_vanish() {
        for ((w, h), want) in [
            ((600, 300), (256, 128)),
            ((256, 10), (256, 10)),
            ((10_000, 1), (256, 1)),
            ((1, 10_000), (1, 256)),
            ((1000, 999), (256, 256)),
        ] {
            let t = thumbnail_of(w, h, false);
            assert_eq!((t.width(), t.height()), want, "{w}x{h}");
        }
    }

    #[test]
    fn decompression_bombs_are_refused_from_their_header() {
        // 100000x100000 RGBA would be 40 GB; past the side limit, refused at the header.
        let started = std::time::Instant::now();
        let err = image_thumbnail("image/png", &bomb_png(100_000, 100_000)).unwrap_err();
        assert!(matches!(err, ThumbnailError::TooLarge(_)), "{err:?}");
        // Within the side limit but 16000x16000x4 = 1 GB: refused by the memory budget.
        let err = image_thumbnail("image/png", &bomb_png(16_000, 16_000)).unwrap_err();
        assert!(matches!(err, ThumbnailError::TooLarge(_)), "{err:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn garbage_and_unknown_types_are_errors_not_panics() {
        assert!(matches!(
            image_thumbnail("image/png", b"\x89PNG\r\n\x1a\nnonsense"),
            Err(ThumbnailError::Corrupt(_))
        ));
        assert!(matches!(
            image_thumbnail("image/jpeg", b"\xff\xd8\xff\xe0\0\x10JFIF\0BBBB"),
            Err(ThumbnailError::Corrupt(_))
        ));
        assert!(matches!(
            image_thumbnail("image/tiff", b"II*\0"),
            Err(ThumbnailError::NotDecodable(_))
        ));
        assert!(decodable_format("application/pdf").is_none());
        assert!(decodable_format("image/webp").is_some());
    }

    #[test]
    fn every_family_has_its_own_icon() {
        let mut seen = Vec::new();
        for f in [Image, Document, Text, Archive, Audio, Video, Other] {
            let png = icon_png(f).unwrap();
            let img = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
            assert_eq!((img.width(), img.height()), (ICON_SIDE, ICON_SIDE));
            assert!(png.len() < 2048, "{f:?} icon is {} bytes", png.len());
            assert!(!seen.contains(&png), "{f:?} looks like another family");
            seen.push(png);
        }
    }

    #[test]
    fn families_of_content_types() {
        for (ct, f) in [
            ("image/tiff", Image),
            ("application/pdf", Document),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                Document,
            ),
            ("application/vnd.ms-excel", Document),
            ("application/rtf", Document),
            ("text/plain", Text),
            ("application/json", Text),
            ("message/rfc822", Text),
            ("application/zip", Archive),
            ("application/gzip", Archive),
            ("audio/mpeg", Audio),
            ("video/mp4", Video),
            ("application/octet-stream", Other),
        ] {
            assert_eq!(IconFamily::of(ct), f, "{ct}");
        }
    }
}
