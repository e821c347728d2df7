//! IDX files (the MNIST family): gzip-compressed or raw, images and labels.
//!
//! Format (big-endian): two zero bytes, a type code (`0x08` = unsigned byte), the number
//! of dimensions, one `u32` per dimension, then the data in row-major order.

use std::io::Read;
use std::path::Path;

use crate::error::{DataError, Result};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions from the header, outermost first.
    pub dims: Vec<usize>,
    /// Row-major data, `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// Reads a whole file, decompressing it when its name ends in `.gz`.
///
/// Errors name the file: empty files, and truncated or corrupt gzip streams, are typed.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = fs_err::read(path)?;
    if raw.is_empty() {
        return Err(DataError::Empty { path: path.into() });
    }
    if path.extension().is_some_and(|e| e == "gz") {
        // The gzip trailer's ISIZE (uncompressed length mod 2^32) sizes the buffer once.
        let hint = raw
            .len()
            .checked_sub(4)
            .map_or(0, |at| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize);
        let mut out = Vec::with_capacity(hint.min(1 << 30) + 1);
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Gzip { path: path.into(), reason: e.to_string() })?;
        if out.is_empty() {
            return Err(DataError::Empty { path: path.into() });
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX byte array, checking the magic number and that the data length matches
/// the header exactly.
pub fn parse(path: &Path, bytes: Vec<u8>, magic: u32, expected: &'static str) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.into(),
            what: "IDX magic number",
            expected: 4,
            found: bytes.len(),
            offset: 0,
        });
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        return Err(DataError::BadMagic { path: path.into(), expected, found, expected_magic: magic });
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.into(),
            what: "IDX header",
            expected: header,
            found: bytes.len(),
            offset: 4,
        });
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize).collect();
    let len = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| DataError::Truncated {
        path: path.into(),
        what: "IDX data (header dimensions overflow)",
        expected: usize::MAX,
        found: bytes.len() - header,
        offset: header,
    })?;
    if bytes.len() - header != len {
        return Err(DataError::Truncated {
            path: path.into(),
            what: if bytes.len() - header < len { "IDX data" } else { "IDX data (trailing bytes)" },
            expected: len,
            found: bytes.len() - header,
            offset: header,
        });
    }
    let mut data = bytes;
    data.drain(..header);
    Ok(IdxArray { dims, data })
}

/// Reads an IDX images file (`[n, rows, cols]` of `u8`).
pub fn read_images(path: &Path) -> Result<IdxArray> {
    parse(path, read_maybe_gz(path)?, IMAGES_MAGIC, "images")
}

/// Reads an IDX labels file (`[n]` of `u8`).
pub fn read_labels(path: &Path) -> Result<IdxArray> {
    parse(path, read_maybe_gz(path)?, LABELS_MAGIC, "labels")
}

/// Encodes an array as IDX bytes (used by tests and by tools that write fixtures).
#[must_use]
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, 0x08, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse(Path::new("x"), bytes, IMAGES_MAGIC, "images").unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data[11], 12);
    }

    #[test]
    fn labels_are_not_images() {
        let bytes = encode(&[3], &[1, 2, 3]);
        let e = parse(Path::new("l"), bytes, IMAGES_MAGIC, "images").unwrap_err();
        assert!(matches!(e, DataError::BadMagic { found: LABELS_MAGIC, .. }), "{e}");
    }

    #[test]
    fn short_and_long_data() {
        let mut bytes = encode(&[2, 2, 2], &[0; 8]);
        bytes.pop();
        let e = parse(Path::new("s"), bytes, IMAGES_MAGIC, "images").unwrap_err();
        assert!(matches!(e, DataError::Truncated { expected: 8, found: 7, offset: 16, .. }), "{e}");
        let mut bytes = encode(&[2, 2, 2], &[0; 8]);
        bytes.push(0);
        let e = parse(Path::new("s"), bytes, IMAGES_MAGIC, "images").unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn short_header() {
        let e = parse(Path::new("h"), vec![0, 0, 8, 3, 0, 0], IMAGES_MAGIC, "images").unwrap_err();
        assert!(matches!(e, DataError::Truncated { what: "IDX header", .. }), "{e}");
    }
}
