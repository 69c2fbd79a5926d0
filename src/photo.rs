//! Profile photos: what idsync checks before it uploads one, and how it names one.
//!
//! Pure: a photo is looked at through its header only (JPEG SOF / PNG IHDR), never decoded,
//! so a decompression bomb costs nothing here and is refused by its declared size. The
//! SHA-256 of the bytes identifies a photo in the journal and in plans (never the bytes).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest width or height accepted: apps show avatars, not posters, and a header that
/// declares more is a decompression bomb in waiting.
pub const MAX_DIMENSION: u32 = 4096;

/// Default for `target.photo_max_bytes`.
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;

/// A person's photo as read from the directory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Photo {
    /// Lower-case hex SHA-256 of the photo's bytes.
    pub sha256: String,
    /// The bytes; empty when the source answered "not modified" (and the app already has
    /// this photo), and never remembered between runs.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// The source's version tag of the photo (Graph's ETag), for conditional reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Set when the source's photo was larger than the cap: its size (as announced, or the
    /// bytes read before the download was cut). `bytes` then holds at most that head.
    #[serde(skip)]
    pub oversize: Option<u64>,
}

impl Photo {
    pub fn new(bytes: Vec<u8>) -> Photo {
        Photo {
            sha256: digest(&bytes),
            bytes,
            etag: None,
            oversize: None,
        }
    }

    /// A photo whose download stopped at the cap: `head` is what was read (maybe nothing,
    /// when the announced length was already too big). Its digest stands for this version
    /// of the photo, so an unchanged oversized photo is not news every run.
    pub fn oversized(head: Vec<u8>, size: u64, etag: Option<String>) -> Photo {
        let sha256 = if head.is_empty() {
            digest(format!("oversize {size} {}", etag.as_deref().unwrap_or("")).as_bytes())
        } else {
            digest(&head)
        };
        Photo {
            sha256,
            bytes: head,
            etag,
            oversize: Some(size),
        }
    }

    /// The checks before upload (`inspect`), a download cut at the cap included.
    pub fn check(&self, max_bytes: usize) -> Result<ImageInfo, PhotoError> {
        match self.oversize {
            Some(size) => Err(PhotoError::TooLarge {
                size: size as usize,
                max: max_bytes,
            }),
            None => inspect(&self.bytes, max_bytes),
        }
    }
}

impl fmt::Debug for Photo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Photo({}, {} bytes)",
            short(&self.sha256),
            self.bytes.len()
        )
    }
}

/// Lower-case hex SHA-256.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The prefix of a digest that plans and reports show.
pub fn short(sha256: &str) -> String {
    sha256.chars().take(12).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
}

impl ImageKind {
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
        }
    }
}

/// What a photo's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

/// Why a photo is not uploaded. Skip this person's photo (a warning), never fail the run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    #[error("{size} bytes, more than target.photo_max_bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("not a JPEG or PNG image (it starts with {start})")]
    NotAnImage { start: String },
    #[error("a {kind} whose header is damaged: {detail}")]
    Damaged { kind: &'static str, detail: String },
    #[error("{width}x{height} pixels; the largest accepted is {max}x{max}")]
    TooManyPixels { width: u32, height: u32, max: u32 },
}

/// Checks a photo before upload: size, JPEG/PNG magic, and dimensions from the header.
pub fn inspect(bytes: &[u8], max_bytes: usize) -> Result<ImageInfo, PhotoError> {
    if bytes.len() > max_bytes {
        return Err(PhotoError::TooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    let info = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        jpeg(bytes)?
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(bytes)?
    } else {
        let start = bytes
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(PhotoError::NotAnImage {
            start: if start.is_empty() {
                "nothing: it is empty".into()
            } else {
                start
            },
        });
    };
    if info.width == 0 || info.height == 0 {
        return Err(PhotoError::Damaged {
            kind: kind_name(info.kind),
            detail: "it declares zero pixels".into(),
        });
    }
    if info.width > MAX_DIMENSION || info.height > MAX_DIMENSION {
        return Err(PhotoError::TooManyPixels {
            width: info.width,
            height: info.height,
            max: MAX_DIMENSION,
        });
    }
    Ok(info)
}

fn kind_name(kind: ImageKind) -> &'static str {
    match kind {
        ImageKind::Jpeg => "JPEG",
        ImageKind::Png => "PNG",
    }
}

fn damaged(kind: &'static str, detail: &str) -> PhotoError {
    PhotoError::Damaged {
        kind,
        detail: detail.into(),
    }
}

/// Walks JPEG marker segments to the first frame header (SOFn) and reads its size.
fn jpeg(b: &[u8]) -> Result<ImageInfo, PhotoError> {
    let mut i = 2;
    loop {
        // Markers may be padded with extra 0xFF bytes.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (b.get(i), b.get(i + 1)) else {
            return Err(damaged("JPEG", "no frame header before the data ends"));
        };
        i += 2;
        match marker {
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => return Err(damaged("JPEG", "image data before any frame header")),
            _ => {}
        }
        let len = match (b.get(i), b.get(i + 1)) {
            (Some(&hi), Some(&lo)) => usize::from(u16::from_be_bytes([hi, lo])),
            _ => return Err(damaged("JPEG", "a segment is cut short")),
        };
        if len < 2 {
            return Err(damaged("JPEG", "a segment declares a length under 2"));
        }
        let is_sof = matches!(marker, 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF);
        if is_sof {
            // length(2) precision(1) height(2) width(2)
            let field = |at: usize| {
                b.get(i + at..i + at + 2)
                    .map(|s| u32::from(u16::from_be_bytes([s[0], s[1]])))
            };
            return match (field(3), field(5)) {
                (Some(height), Some(width)) => Ok(ImageInfo {
                    kind: ImageKind::Jpeg,
                    width,
                    height,
                }),
                _ => Err(damaged("JPEG", "the frame header is cut short")),
            };
        }
        i += len;
    }
}

/// Reads a PNG's IHDR, which must be the first chunk.
fn png(b: &[u8]) -> Result<ImageInfo, PhotoError> {
    let Some(ihdr) = b.get(8..24) else {
        return Err(damaged("PNG", "the header chunk is cut short"));
    };
    if &ihdr[4..8] != b"IHDR" {
        return Err(damaged("PNG", "the first chunk is not IHDR"));
    }
    let be = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    Ok(ImageInfo {
        kind: ImageKind::Png,
        width: be(&ihdr[8..12]),
        height: be(&ihdr[12..16]),
    })
}

/// A tiny but well-formed JPEG header of `width` x `height` (SOI, APP0, SOF0, SOS, EOI), padded
/// to `size` bytes, for tests of this module and the black-box photo tests.
pub fn sample_jpeg(width: u16, height: u16, size: usize) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    b.extend([0xFF, 0xE0, 0x00, 0x10]);
    b.extend(b"JFIF\0");
    b.extend([1, 1, 0, 0, 1, 0, 1, 0, 0]);
    b.extend([0xFF, 0xC0, 0x00, 0x11, 8]);
    b.extend(height.to_be_bytes());
    b.extend(width.to_be_bytes());
    b.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    b.extend([
        0xFF, 0xDA, 0x00, 0x0C, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0,
    ]);
    let mut fill = 1u8;
    while b.len() + 2 < size {
        b.push(fill);
        fill = fill.wrapping_mul(31).wrapping_add(7) | 1;
    }
    b.extend([0xFF, 0xD9]);
    b
}

/// A minimal PNG signature + IHDR of `width` x `height`, for tests.
pub fn sample_png(width: u32, height: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(13u32.to_be_bytes());
    b.extend(b"IHDR");
    b.extend(width.to_be_bytes());
    b.extend(height.to_be_bytes());
    b.extend([8, 6, 0, 0, 0]);
    b.extend([0, 0, 0, 0]); // CRC (not checked: idsync never decodes)
    b.extend(0u32.to_be_bytes());
    b.extend(b"IEND");
    b.extend([0xAE, 0x42, 0x60, 0x82]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_is_measured_from_its_frame_header() {
        let info = inspect(&sample_jpeg(96, 64, 600), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                kind: ImageKind::Jpeg,
                width: 96,
                height: 64
            }
        );
    }

    #[test]
    fn a_png_is_measured_from_its_ihdr() {
        let info = inspect(&sample_png(120, 80), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                kind: ImageKind::Png,
                width: 120,
                height: 80
            }
        );
    }

    #[test]
    fn an_oversized_photo_is_refused_before_it_is_read() {
        let err = inspect(&sample_jpeg(10, 10, 5000), 2000).unwrap_err();
        assert_eq!(
            err,
            PhotoError::TooLarge {
                size: 5000,
                max: 2000
            }
        );
    }

    #[test]
    fn bytes_that_are_not_an_image_are_refused() {
        assert!(matches!(
            inspect(b"GIF89a....", DEFAULT_MAX_BYTES),
            Err(PhotoError::NotAnImage { .. })
        ));
        assert!(matches!(
            inspect(b"", DEFAULT_MAX_BYTES),
            Err(PhotoError::NotAnImage { .. })
        ));
    }

    #[test]
    fn a_header_declaring_a_huge_image_is_a_bomb_and_refused() {
        let err = inspect(&sample_png(60_000, 60_000), DEFAULT_MAX_BYTES).unwrap_err();
        assert!(matches!(err, PhotoError::TooManyPixels { .. }), "{err}");
        let err = inspect(&sample_jpeg(65_000, 100, 600), DEFAULT_MAX_BYTES).unwrap_err();
        assert!(matches!(err, PhotoError::TooManyPixels { .. }), "{err}");
    }

    #[test]
    fn damaged_headers_are_refused_without_panicking() {
        let jpeg = sample_jpeg(10, 10, 600);
        // The frame header (with the size) ends at byte 29.
        for cut in 3..29 {
            let r = inspect(&jpeg[..cut], DEFAULT_MAX_BYTES);
            assert!(
                matches!(r, Err(PhotoError::Damaged { .. })),
                "cut {cut}: {r:?}"
            );
        }
        assert!(matches!(
            inspect(&sample_png(1, 1)[..20], DEFAULT_MAX_BYTES),
            Err(PhotoError::Damaged { .. })
        ));
        // A segment length of 0 must not loop forever.
        let looping = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00, 0xFF, 0xE0];
        assert!(inspect(&looping, DEFAULT_MAX_BYTES).is_err());
    }

    #[test]
    fn a_digest_is_sha256_hex_and_shows_as_a_prefix() {
        let p = Photo::new(b"abc".to_vec());
        assert_eq!(
            p.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(short(&p.sha256), "ba7816bf8f01");
        assert_eq!(format!("{p:?}"), "Photo(ba7816bf8f01, 3 bytes)");
    }
}
