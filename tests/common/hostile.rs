//! Builders for the hostile-file tests and the fuzz seeds: PyTorch checkpoints (zip and legacy)
//! assembled opcode by opcode, so a test states exactly which field lies.
#![allow(dead_code)]

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

/// A pickle under construction (protocol 2).
#[derive(Default, Clone)]
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn new() -> Pickle {
        Pickle(b"\x80\x02".to_vec())
    }
    pub fn op(mut self, bytes: &[u8]) -> Pickle {
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn global(self, module: &str, name: &str) -> Pickle {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    pub fn str(self, s: &str) -> Pickle {
        let mut op = vec![b'X'];
        op.extend_from_slice(&(s.len() as u32).to_le_bytes());
        op.extend_from_slice(s.as_bytes());
        self.op(&op)
    }
    /// An integer as LONG1 with 8 bytes (any i64).
    pub fn int(self, v: i64) -> Pickle {
        let mut op = vec![0x8a, 8];
        op.extend_from_slice(&v.to_le_bytes());
        self.op(&op)
    }
    pub fn tuple_of_ints(self, vs: &[i64]) -> Pickle {
        vs.iter().fold(self.op(b"("), |p, &v| p.int(v)).op(b"t")
    }
    pub fn ordered_dict(self) -> Pickle {
        self.global("collections", "OrderedDict").op(b")R")
    }
    pub fn stop(self) -> Vec<u8> {
        self.op(b".").0
    }
}

/// One tensor of a checkpoint: name, storage offset, size, stride, storage element count.
#[derive(Clone)]
pub struct TensorSpec {
    pub name: String,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
    pub numel: i64,
}

impl TensorSpec {
    /// A contiguous float tensor of `size` over its own storage.
    pub fn contiguous(name: &str, size: &[i64]) -> TensorSpec {
        let mut stride = vec![1i64; size.len()];
        for d in (0..size.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * size[d + 1];
        }
        TensorSpec {
            name: name.into(),
            offset: 0,
            size: size.to_vec(),
            stride,
            numel: size.iter().product(),
        }
    }
}

/// The state_dict pickle torch.save writes for `tensors`, storage `i` keyed "i".
pub fn state_dict_pickle(tensors: &[TensorSpec]) -> Vec<u8> {
    let mut p = Pickle::new().ordered_dict().op(b"(");
    for (i, t) in tensors.iter().enumerate() {
        p = p
            .str(&t.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .op(b"((")
            .str("storage")
            .global("torch", "FloatStorage")
            .str(&i.to_string())
            .str("cpu")
            .int(t.numel)
            .op(b"tQ")
            .int(t.offset)
            .tuple_of_ints(&t.size)
            .tuple_of_ints(&t.stride)
            .op(b"\x89")
            .ordered_dict()
            .op(b"tR");
    }
    p.op(b"u").stop()
}

/// A zip checkpoint holding `pickle` as `archive/data.pkl` and the `storages` as
/// `archive/data/0`, `archive/data/1`, … (deflated when `deflate`).
pub fn pth_zip(pickle: &[u8], storages: &[Vec<u8>], deflate: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = SimpleFileOptions::default().compression_method(method);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(pickle).unwrap();
    for (i, s) in storages.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), opts).unwrap();
        zip.write_all(s).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A zip checkpoint holding `pickle` and one deflated storage `archive/data/0` of `bytes`
/// zeros (zip64 past 4 GiB), written in chunks: the entry honestly declares its size, and
/// building it never holds more than a chunk.
pub fn pth_zip_with_zeros(pickle: &[u8], bytes: u64) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(pickle).unwrap();
    zip.start_file("archive/data/0", opts).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        zip.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    zip.finish().unwrap().into_inner()
}

/// Little-endian f32 bytes of `n` values `0, 1, 2, …`.
pub fn floats(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

/// A legacy (pre-zip) torch.save file: magic, protocol, system info, `root`, the storage keys,
/// then each storage as a count and its bytes (`count` may lie).
pub fn pth_legacy(root: &[u8], storages: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e".to_vec();
    out.extend(Pickle::new().op(b"M\xe9\x03").stop()); // protocol 1001
    out.extend(
        Pickle::new()
            .op(b"}")
            .str("little_endian")
            .op(b"\x88s")
            .stop(),
    );
    out.extend_from_slice(root);
    let mut keys = Pickle::new().op(b"(");
    for i in 0..storages.len() {
        keys = keys.str(&i.to_string());
    }
    out.extend(keys.op(b"l").stop());
    for (count, bytes) in storages {
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// A pickle of `depth` lists nested in one another.
pub fn nested_lists(depth: usize) -> Vec<u8> {
    let mut p = Pickle::new();
    p.0.extend(std::iter::repeat_n(b']', depth));
    p.0.extend(std::iter::repeat_n(b'a', depth - 1));
    p.stop()
}

/// A pickle of a few hundred bytes whose value doubles `rounds` times through memo re-reads:
/// `x = []; x = (x, x)` again and again.
pub fn memo_doubling(rounds: usize) -> Vec<u8> {
    let mut p = Pickle::new().op(b"]q\x00");
    for _ in 0..rounds {
        p = p.op(b"0h\x00h\x00\x86q\x00");
    }
    p.stop()
}
