//! SPDY/3 header blocks: a count, then length-prefixed names and values
//! (several values of one name joined by NUL), compressed with one zlib
//! stream per direction and connection that starts from the dictionary
//! and is sync-flushed after every block.

use anyhow::{anyhow, bail, Context};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use super::dictionary::DICTIONARY;

/// Name/value pairs, names lowercase (SPDY requires it), one pair per value.
pub type Headers = Vec<(String, String)>;

/// A header block larger than this is refused (kubectl sends a few bytes).
const MAX_BLOCK: usize = 1 << 20;

/// The first value of `name`.
pub fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The uncompressed block for `headers`.
pub fn encode(headers: &Headers) -> Vec<u8> {
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in headers {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(names.len() as u32).to_be_bytes());
    for name in names {
        let value = headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("\0");
        let name = name.to_ascii_lowercase();
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The pairs of an uncompressed block.
pub fn decode(block: &[u8]) -> anyhow::Result<Headers> {
    let mut rest = block;
    let mut take = |n: usize| -> anyhow::Result<&[u8]> {
        if rest.len() < n {
            bail!("truncated header block");
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = be32(take(4)?);
    let mut headers = Headers::new();
    for _ in 0..count {
        let len = be32(take(4)?);
        let name = String::from_utf8(take(len)?.to_vec()).context("header name")?;
        let len = be32(take(4)?);
        let value = String::from_utf8(take(len)?.to_vec()).context("header value")?;
        for v in value.split('\0') {
            headers.push((name.to_ascii_lowercase(), v.to_string()));
        }
    }
    Ok(headers)
}

/// The sending side's compression context.
pub struct Deflater(Compress);

impl Deflater {
    pub fn new() -> anyhow::Result<Self> {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(DICTIONARY)
            .map_err(|e| anyhow!("zlib dictionary: {e}"))?;
        Ok(Deflater(c))
    }

    pub fn compress(&mut self, block: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(block.len() + 64);
        let start = self.0.total_in();
        loop {
            let done = (self.0.total_in() - start) as usize;
            out.reserve(256);
            self.0
                .compress_vec(&block[done..], &mut out, FlushCompress::Sync)
                .map_err(|e| anyhow!("compressing headers: {e}"))?;
            // All input taken and room left over: the flush is complete.
            if (self.0.total_in() - start) as usize == block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The receiving side's decompression context.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        Inflater(Decompress::new(true))
    }

    pub fn decompress(&mut self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() * 4 + 256);
        let start = self.0.total_in();
        loop {
            let (before_in, before_out) = (self.0.total_in(), self.0.total_out());
            let done = (before_in - start) as usize;
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(1024));
            }
            match self
                .0
                .decompress_vec(&data[done..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| anyhow!("zlib dictionary: {e}"))?;
                    continue;
                }
                Err(e) => bail!("decompressing headers: {e}"),
            }
            if out.len() > MAX_BLOCK {
                bail!("header block over {MAX_BLOCK} bytes");
            }
            let consumed = (self.0.total_in() - start) as usize;
            if consumed == data.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if self.0.total_in() == before_in && self.0.total_out() == before_out {
                bail!("truncated compressed header block");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn blocks_round_trip_with_repeated_names() {
        let headers = h(&[("streamtype", "error"), ("a", "1"), ("a", "2")]);
        let block = encode(&headers);
        // Two names: the repeated one carries both values joined by NUL.
        assert_eq!(&block[..4], &[0, 0, 0, 2]);
        assert!(block.windows(3).any(|w| w == b"1\x002"));
        assert_eq!(decode(&block).unwrap(), headers);
        assert!(decode(&block[..block.len() - 1]).is_err());
    }

    #[test]
    fn compression_contexts_carry_across_blocks() {
        let mut d = Deflater::new().unwrap();
        let mut i = Inflater::new();
        // Several blocks through the same pair of contexts, as on a connection.
        for n in 0..5 {
            let headers = h(&[
                ("streamtype", "data"),
                ("port", "8080"),
                ("requestid", &n.to_string()),
            ]);
            let z = d.compress(&encode(&headers)).unwrap();
            if n == 0 {
                // A zlib header that names a preset dictionary (FDICT), whose
                // id is the dictionary's Adler-32 as in every SPDY/3 peer.
                assert_eq!(z[1] & 0x20, 0x20);
                assert_eq!(&z[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
            }
            let plain = i.decompress(&z).unwrap();
            assert_eq!(decode(&plain).unwrap(), headers);
        }
        let empty = d.compress(&encode(&Headers::new())).unwrap();
        assert!(decode(&i.decompress(&empty).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn a_block_from_another_dictionary_is_refused() {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(b"not the spdy dictionary").unwrap();
        let mut out = Vec::with_capacity(256);
        c.compress_vec(&encode(&h(&[("a", "b")])), &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(Inflater::new().decompress(&out).is_err());
    }
}
