//! A FlatBuffers writer for the few shapes of data a TFLite file needs: tables of scalars and
//! offsets, vectors of scalars, of bytes and of tables, strings. Built back to front, as
//! FlatBuffers' own builders do, so that every offset points forward (a `uoffset` is unsigned):
//! a child is written before the table that refers to it. Positions are kept as distances from
//! the end of the buffer, which do not move as the buffer grows at the front.
//!
//! Bytes are pushed onto a vector in reverse and the vector is reversed once at the end, so
//! that writing tens of megabytes of weights costs one pass.

/// A written object: its distance from the end of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset(usize);

/// One field of a table, at its slot (the schema's field index).
#[derive(Debug, Clone, Copy)]
pub enum Field {
    U8(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    Offset(Offset),
}

impl Field {
    fn size(self) -> usize {
        match self {
            Field::U8(_) | Field::Bool(_) => 1,
            _ => 4,
        }
    }
}

/// The largest alignment any object asks for (a TFLite buffer's data is aligned to 16).
const MAX_ALIGN: usize = 16;

#[derive(Default)]
pub struct Builder {
    /// The buffer so far, in reverse.
    rev: Vec<u8>,
}

impl Builder {
    fn len(&self) -> usize {
        self.rev.len()
    }

    /// Pad so that after `size` more bytes the distance from the end is a multiple of `align`
    /// (the object then starts aligned once the buffer's total is a multiple of
    /// [`MAX_ALIGN`]).
    fn align(&mut self, size: usize, align: usize) {
        let pad = (align - (self.len() + size) % align) % align;
        self.rev.resize(self.len() + pad, 0);
    }

    /// Prepend `bytes` (in their forward order).
    fn prepend(&mut self, bytes: &[u8]) {
        self.rev.extend(bytes.iter().rev());
    }

    /// Prepend a `uoffset` to `target` at the current position.
    fn prepend_offset(&mut self, target: Offset) {
        self.align(4, 4);
        let at = self.len() + 4;
        self.prepend(&((at - target.0) as u32).to_le_bytes());
    }

    /// A vector of `count` elements of `elem` bytes each, given as their little-endian bytes,
    /// the elements aligned to `align`.
    pub fn vector(&mut self, bytes: &[u8], elem: usize, align: usize) -> Offset {
        let count = bytes.len() / elem.max(1);
        self.align(bytes.len(), align.max(4));
        self.prepend(bytes);
        self.align(4, 4);
        self.prepend(&(count as u32).to_le_bytes());
        Offset(self.len())
    }

    pub fn i32s(&mut self, v: &[i32]) -> Offset {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.vector(&bytes, 4, 4)
    }

    pub fn f32s(&mut self, v: &[f32]) -> Offset {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.vector(&bytes, 4, 4)
    }

    pub fn i64s(&mut self, v: &[i64]) -> Offset {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.vector(&bytes, 8, 8)
    }

    /// A byte vector whose data starts on a 16-byte boundary (a TFLite buffer).
    pub fn data(&mut self, bytes: &[u8]) -> Offset {
        self.vector(bytes, 1, MAX_ALIGN)
    }

    pub fn string(&mut self, s: &str) -> Offset {
        let mut bytes = s.as_bytes().to_vec();
        self.align(bytes.len() + 1, 4);
        bytes.push(0);
        self.prepend(&bytes);
        self.prepend(&((bytes.len() - 1) as u32).to_le_bytes());
        Offset(self.len())
    }

    /// A vector of offsets to `items`, each relative to its own element.
    pub fn offsets(&mut self, items: &[Offset]) -> Offset {
        self.align(4 * items.len(), 4);
        for &item in items.iter().rev() {
            self.prepend_offset(item);
        }
        self.prepend(&(items.len() as u32).to_le_bytes());
        Offset(self.len())
    }

    /// A table with `fields` at their slots; its vtable is written just before it.
    pub fn table(&mut self, fields: &[(usize, Field)]) -> Offset {
        let start = self.len();
        // Larger fields first (at the end of the table), so that each is aligned without gaps.
        let mut order: Vec<&(usize, Field)> = fields.iter().collect();
        order.sort_by_key(|(slot, f)| (f.size(), std::cmp::Reverse(*slot)));
        let mut at: Vec<(usize, usize)> = Vec::with_capacity(fields.len());
        for &&(slot, field) in &order {
            match field {
                Field::U8(v) => self.prepend(&[v]),
                Field::Bool(v) => self.prepend(&[u8::from(v)]),
                Field::I32(v) => {
                    self.align(4, 4);
                    self.prepend(&v.to_le_bytes());
                }
                Field::U32(v) => {
                    self.align(4, 4);
                    self.prepend(&v.to_le_bytes());
                }
                Field::Offset(o) => self.prepend_offset(o),
            }
            at.push((slot, self.len()));
        }
        let slots = fields.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
        let vtable_size = 4 + 2 * slots;
        self.align(4, 4);
        // The table starts with the signed distance back to its vtable, which comes right
        // before it.
        self.prepend(&(vtable_size as i32).to_le_bytes());
        let table = self.len();
        let mut entries = vec![0u16; slots];
        for (slot, pos) in at {
            entries[slot] = (table - pos) as u16;
        }
        let mut vtable = Vec::with_capacity(vtable_size);
        vtable.extend((vtable_size as u16).to_le_bytes());
        vtable.extend(((table - start) as u16).to_le_bytes());
        for e in entries {
            vtable.extend(e.to_le_bytes());
        }
        self.prepend(&vtable);
        Offset(table)
    }

    /// The finished buffer: the root offset, the four-byte file identifier, then the objects.
    pub fn finish(mut self, root: Offset, identifier: &[u8; 4]) -> Vec<u8> {
        self.align(8, MAX_ALIGN);
        self.prepend(identifier);
        self.prepend_offset(root);
        self.rev.reverse();
        self.rev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> usize {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
    }

    fn u16_at(b: &[u8], at: usize) -> usize {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize
    }

    /// The position of field `slot` of the table at `table`, as a reader finds it.
    fn field(b: &[u8], table: usize, slot: usize) -> Option<usize> {
        let vt = table - i32::from_le_bytes(b[table..table + 4].try_into().unwrap()) as usize;
        let entry = 4 + 2 * slot;
        (entry < u16_at(b, vt))
            .then(|| u16_at(b, vt + entry))
            .filter(|&o| o != 0)
            .map(|o| table + o)
    }

    #[test]
    fn a_reader_finds_what_was_written() {
        let mut b = Builder::default();
        let name = b.string("conv");
        let shape = b.i32s(&[1, 7, 7, 512]);
        let data = b.data(&[1, 2, 3]);
        let inner = b.table(&[(0, Field::U8(9)), (2, Field::I32(-5))]);
        let list = b.offsets(&[inner, inner]);
        let root = b.table(&[
            (0, Field::Offset(name)),
            (1, Field::Offset(shape)),
            (3, Field::Offset(data)),
            (4, Field::Offset(list)),
            (5, Field::Bool(true)),
        ]);
        let buf = b.finish(root, b"TFL3");
        assert_eq!(&buf[4..8], b"TFL3");
        assert_eq!(buf.len() % MAX_ALIGN, 0);
        let root = u32_at(&buf, 0);
        let follow = |at: usize| at + u32_at(&buf, at);
        let s = follow(field(&buf, root, 0).unwrap());
        assert_eq!(&buf[s + 4..s + 4 + u32_at(&buf, s)], b"conv");
        assert_eq!(buf[s + 8], 0, "strings end with a zero byte");
        let v = follow(field(&buf, root, 1).unwrap());
        assert_eq!(u32_at(&buf, v), 4);
        assert_eq!(u32_at(&buf, v + 16), 512);
        let d = follow(field(&buf, root, 3).unwrap());
        assert_eq!((d + 4) % MAX_ALIGN, 0, "a buffer's data is aligned");
        assert_eq!(&buf[d + 4..d + 7], &[1, 2, 3]);
        assert_eq!(field(&buf, root, 2), None);
        assert_eq!(buf[field(&buf, root, 5).unwrap()], 1);
        let l = follow(field(&buf, root, 4).unwrap());
        assert_eq!(u32_at(&buf, l), 2);
        for i in 0..2 {
            let t = follow(l + 4 + 4 * i);
            assert_eq!(buf[field(&buf, t, 0).unwrap()], 9);
            let at = field(&buf, t, 2).unwrap();
            assert_eq!(at % 4, 0);
            assert_eq!(i32::from_le_bytes(buf[at..at + 4].try_into().unwrap()), -5);
            assert_eq!(field(&buf, t, 1), None);
        }
    }
}
