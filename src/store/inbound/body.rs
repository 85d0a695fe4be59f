//! How a raw body is stored: LZ4-compressed when that pays, verbatim otherwise.
//!
//! Webhook bodies are JSON and shrink about 4x. On SQLite that is one page per event instead of
//! three overflow pages, written to the WAL and again by the checkpoint; on PostgreSQL it
//! replaces the server's own pglz compression, which is several times slower than LZ4.

pub(super) const IDENTITY: &str = "identity";
const LZ4: &str = "lz4";
/// Below this a body fits its row anyway and compressing it is not worth a call.
const MIN_BYTES: usize = 1024;

thread_local! {
    /// Compression scratch space, reused: a fresh worst-case-sized, zeroed buffer per body
    /// cost more than the compression itself.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Compresses `body` in place when that makes it smaller; returns the encoding it is in.
/// The stored form is `lz4_flex`'s size-prepended block (little-endian `u32` length first).
pub(super) fn encode(body: &mut bytes::Bytes) -> &'static str {
    let Ok(len) = u32::try_from(body.len()) else {
        return IDENTITY;
    };
    if body.len() < MIN_BYTES {
        return IDENTITY;
    }
    let bound = lz4_flex::block::get_maximum_output_size(body.len());
    let packed = SCRATCH.with_borrow_mut(|scratch| {
        if scratch.len() < bound {
            scratch.resize(bound, 0);
        }
        let n = lz4_flex::block::compress_into(body, &mut scratch[..bound]).ok()?;
        (n + 4 < body.len()).then(|| {
            let mut packed = Vec::with_capacity(n + 4);
            packed.extend_from_slice(&len.to_le_bytes());
            packed.extend_from_slice(&scratch[..n]);
            packed
        })
    });
    match packed {
        Some(p) => {
            *body = bytes::Bytes::from(p);
            LZ4
        }
        None => IDENTITY,
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum DecodeError {
    #[error("unknown encoding `{0}`")]
    Unknown(String),
    #[error("lz4: {0}")]
    Lz4(#[from] lz4_flex::block::DecompressError),
}

/// The body as received.
pub(super) fn decode(encoding: &str, stored: Vec<u8>) -> Result<Vec<u8>, DecodeError> {
    match encoding {
        IDENTITY => Ok(stored),
        LZ4 => Ok(lz4_flex::decompress_size_prepended(&stored)?),
        other => Err(DecodeError::Unknown(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_json_is_compressed_and_comes_back_whole() {
        let json = format!(
            "{{\"items\": [{}]}}",
            "{\"name\": \"x\", \"n\": 1},".repeat(200)
        );
        let mut body = bytes::Bytes::from(json.clone());
        let encoding = encode(&mut body);
        assert_eq!(encoding, LZ4);
        assert!(
            body.len() * 3 < json.len(),
            "{} of {}",
            body.len(),
            json.len()
        );
        assert_eq!(decode(encoding, body.to_vec()).unwrap(), json.as_bytes());
    }

    #[test]
    fn small_or_incompressible_bodies_are_kept_verbatim() {
        let mut small = bytes::Bytes::from_static(b"{\"a\": 1}");
        assert_eq!(encode(&mut small), IDENTITY);
        assert_eq!(&small[..], b"{\"a\": 1}");
        // Pseudo-random bytes do not compress.
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut body = bytes::Bytes::from(noise.clone());
        assert_eq!(encode(&mut body), IDENTITY);
        assert_eq!(&body[..], &noise[..]);
    }

    #[test]
    fn a_damaged_body_is_an_error_not_a_panic() {
        assert!(decode(LZ4, vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3]).is_err());
        assert!(decode(LZ4, vec![]).is_err());
        assert!(decode("zstd", vec![1]).is_err());
    }
}
