//! PyTorch checkpoints (`torch.save` zip format): `archive/data.pkl` describes the tensors,
//! `archive/data/<key>` holds each storage's raw little-endian bytes.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::pickle::{self, Value};
use crate::error::quoted;
use crate::limits::MAX_DECODED_VALUES;
use crate::tensor::{HostTensor, StateDict, gather_strided};
use crate::{Error, Result};

fn bad(msg: impl Into<String>) -> Error {
    Error::Checkpoint(msg.into())
}

/// True when the bytes start like a zip archive (torch.save's default format since 1.6).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// The largest `data.pkl` read: it describes the tensors, it does not hold them (ResNet18's
/// is about 30 KB).
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Read zip entry `name`, refusing one that declares more than `limit` bytes or inflates
/// beyond what it declares (a deflate stream can expand a thousandfold).
fn read_entry(zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str, limit: u64) -> Result<Vec<u8>> {
    let mut f = zip
        .by_name(name)
        .map_err(|e| bad(format!("{name}: {e} (damaged or truncated file?)")))?;
    let declared = f.size();
    if declared > limit {
        return Err(bad(format!(
            "{name} declares {declared} bytes, over the limit of {limit}"
        )));
    }
    let mut buf = Vec::with_capacity(declared as usize);
    (&mut f)
        .take(declared + 1)
        .read_to_end(&mut buf)
        .map_err(|e| bad(format!("{name}: {e} (damaged or truncated file?)")))?;
    if buf.len() as u64 != declared {
        return Err(bad(format!(
            "{name} holds {} bytes where its header declares {declared} (damaged file?)",
            if buf.len() as u64 > declared {
                "more".to_string()
            } else {
                buf.len().to_string()
            }
        )));
    }
    Ok(buf)
}

/// What a checkpoint declares, by tensor name (as the state dict will hold it), before any
/// storage is read: a caller refuses a file that is not the network it wants here, at the cost
/// of `data.pkl` alone.
pub type DeclaredShapes = [(String, Vec<usize>)];

/// Read the `state_dict` of a zip-format PyTorch checkpoint.
pub fn read_pth_zip(bytes: &[u8]) -> Result<StateDict> {
    read_pth_zip_inspected(bytes, &mut |_| Ok(()))
}

/// [`read_pth_zip`], with `inspect` shown the declared names and shapes first: storages are
/// read only if it accepts them, and only as far as the tensors reach into them (an entry may
/// declare gigabytes that no tensor uses).
pub fn read_pth_zip_inspected(
    bytes: &[u8],
    inspect: &mut dyn FnMut(&DeclaredShapes) -> Result<()>,
) -> Result<StateDict> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        bad(format!(
            "not a readable zip archive ({e}); the file may be truncated"
        ))
    })?;
    let pkl_name = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(str::to_string)
        .ok_or_else(|| bad("no data.pkl inside; is this a torch.save file?"))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let pkl = read_entry(&mut zip, &pkl_name, MAX_PICKLE_BYTES)?;
    let (root, _) = pickle::load(&pkl).map_err(|e| bad(format!("{pkl_name}: {e}")))?;
    let refs = tensor_refs(&root)?;
    // Each view against its storage's declared size (the zip header, nothing inflated yet).
    let mut declared: HashMap<String, u64> = HashMap::new();
    for r in &refs {
        let entry = format!("{prefix}data/{}", r.key);
        let size = match declared.get(&r.key) {
            Some(&s) => s,
            None => {
                let s = zip
                    .by_name(&entry)
                    .map_err(|e| bad(format!("{entry}: {e} (damaged or truncated file?)")))?
                    .size();
                declared.insert(r.key.clone(), s);
                s
            }
        };
        r.check_within(usize::try_from(size / r.elem as u64).unwrap_or(usize::MAX))?;
    }
    check_total(&refs)?;
    inspect(&shapes_of(&refs))?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for (key, needed) in bytes_needed(&refs)? {
        let entry = format!("{prefix}data/{key}");
        storages.insert(key, read_entry_prefix(&mut zip, &entry, needed)?);
    }
    build(refs, &storages)
}

/// The first `needed` bytes of zip entry `name` (checked against its declared size before).
/// When they are the whole entry, one byte more is asked for: an entry that inflates beyond
/// what it declares is damaged or hostile.
fn read_entry_prefix(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    needed: u64,
) -> Result<Vec<u8>> {
    let f = zip
        .by_name(name)
        .map_err(|e| bad(format!("{name}: {e} (damaged or truncated file?)")))?;
    let declared = f.size();
    if needed >= declared {
        drop(f);
        return read_entry(zip, name, declared);
    }
    let mut buf = Vec::with_capacity(needed as usize);
    f.take(needed)
        .read_to_end(&mut buf)
        .map_err(|e| bad(format!("{name}: {e} (damaged or truncated file?)")))?;
    if (buf.len() as u64) < needed {
        return Err(bad(format!(
            "{name} holds {} bytes where its header declares {declared} (damaged file?)",
            buf.len()
        )));
    }
    Ok(buf)
}

/// The legacy (pre-1.6, non-zip) `torch.save` format starts with this pickle: protocol 2, the
/// magic number 0x1950a86a20f9469cfc6c as a 10-byte long, stop.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";

/// True when the bytes start like a legacy `torch.save` file.
pub fn is_legacy(bytes: &[u8]) -> bool {
    bytes.starts_with(LEGACY_MAGIC)
}

/// Every storage reference `('storage', class, key, location, numel, view)` in a pickle.
fn storage_refs<'a>(v: &'a Value, out: &mut HashMap<String, &'a str>) {
    match v {
        Value::PersistentId(pid) => {
            if let Some(seq) = pid.as_seq()
                && let (Some(Value::Global(_, class)), Some(key)) =
                    (seq.get(1), seq.get(2).and_then(Value::as_str))
            {
                out.insert(key.to_string(), class.as_str());
            }
        }
        Value::Tuple(xs) | Value::List(xs) => xs.iter().for_each(|x| storage_refs(x, out)),
        Value::Dict(items) => items.iter().for_each(|(k, x)| {
            storage_refs(k, out);
            storage_refs(x, out);
        }),
        Value::Call(f, args) => {
            storage_refs(f, out);
            args.iter().for_each(|x| storage_refs(x, out));
        }
        _ => {}
    }
}

/// Read the `state_dict` of a legacy `torch.save` file: after the magic number, pickles of the
/// protocol version, the system info, the object and the list of storage keys; then each
/// storage in that order as an 8-byte little-endian element count and its raw bytes.
pub fn read_pth_legacy(bytes: &[u8]) -> Result<StateDict> {
    read_pth_legacy_inspected(bytes, &mut |_| Ok(()))
}

/// [`read_pth_legacy`], with `inspect` shown the declared names and shapes before any storage
/// is copied.
pub fn read_pth_legacy_inspected(
    bytes: &[u8],
    inspect: &mut dyn FnMut(&DeclaredShapes) -> Result<()>,
) -> Result<StateDict> {
    let mut pos = LEGACY_MAGIC.len();
    let mut next = |what: &str| -> Result<Value> {
        let rest = bytes.get(pos..).unwrap_or_default();
        let (v, n) =
            pickle::load(rest).map_err(|e| bad(format!("legacy checkpoint, {what}: {e}")))?;
        pos += n;
        Ok(v)
    };
    let _protocol = next("protocol version")?;
    let info = next("system info")?;
    if info.get("little_endian") == Some(&Value::Bool(false)) {
        return Err(bad("big-endian checkpoints are not supported"));
    }
    let root = next("state_dict")?;
    let refs = tensor_refs(&root)?;
    check_total(&refs)?;
    inspect(&shapes_of(&refs))?;
    let keys = next("storage keys")?;
    let keys: Vec<String> = keys
        .as_seq()
        .ok_or_else(|| bad("legacy checkpoint: the storage key list is missing"))?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let mut classes = HashMap::new();
    storage_refs(&root, &mut classes);
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    for key in &keys {
        let class = classes
            .get(key)
            .ok_or_else(|| bad(format!("storage {} is listed but never used", quoted(key))))?;
        let (_, size) = storage_dtype(class)
            .ok_or_else(|| bad(format!("unsupported storage type {}", quoted(class))))?;
        let count = bytes
            .get(pos..pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize)
            .ok_or_else(|| {
                bad(format!(
                    "storage {} is cut off (truncated file?)",
                    quoted(key)
                ))
            })?;
        pos += 8;
        let data = count
            .checked_mul(size)
            .and_then(|len| bytes.get(pos..pos.checked_add(len)?))
            .ok_or_else(|| {
                bad(format!(
                    "storage {} claims {count} values, more than the file holds (truncated file?)",
                    quoted(key)
                ))
            })?;
        let len = data.len();
        storages.insert(key.clone(), data.to_vec());
        pos += len;
    }
    build(refs, &storages)
}

/// The element type of a PyTorch storage class, and its size in bytes.
fn storage_dtype(class: &str) -> Option<(&'static str, usize)> {
    Some(match class {
        "FloatStorage" => ("f32", 4),
        "HalfStorage" => ("f16", 2),
        "BFloat16Storage" => ("bf16", 2),
        "DoubleStorage" => ("f64", 8),
        "LongStorage" => ("i64", 8),
        "IntStorage" => ("i32", 4),
        _ => return None,
    })
}

/// Decode little-endian storage bytes of `dtype` into f32.
pub fn decode_storage(bytes: &[u8], dtype: &str) -> Vec<f32> {
    match dtype {
        "f32" => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        "f16" => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        "bf16" => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        "f64" => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        "i64" => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
    }
}

/// The message of a checkpoint error without its "PyTorch checkpoint:" prefix, to nest it.
fn detail(e: Error) -> String {
    match e {
        Error::Checkpoint(m) => m,
        other => other.to_string(),
    }
}

fn ints(v: &Value, what: &str) -> Result<Vec<usize>> {
    v.as_seq()
        .ok_or_else(|| bad(format!("tensor {what} is not a tuple")))?
        .iter()
        .map(|x| {
            x.as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "tensor {what} holds a negative or non-integer value"
                    ))
                })
        })
        .collect()
}

/// One tensor as `data.pkl` describes it: a strided view of a storage.
struct TensorRef {
    /// The state dict's name (without a `module.` prefix).
    name: String,
    /// The storage's key (its zip entry is `data/<key>`).
    key: String,
    dtype: &'static str,
    /// Bytes per storage element.
    elem: usize,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorRef {
    /// Its element count; `None` past `usize`.
    fn numel(&self) -> Option<usize> {
        self.size.iter().try_fold(1usize, |a, &s| a.checked_mul(s))
    }

    /// Storage elements the view reaches (one past its last); 0 for an empty view, `None` on
    /// overflow.
    fn extent(&self) -> Option<usize> {
        if self.numel()? == 0 {
            return Some(0);
        }
        self.size
            .iter()
            .zip(&self.stride)
            .try_fold(self.offset, |last, (&s, &st)| {
                last.checked_add((s - 1).checked_mul(st)?)
            })?
            .checked_add(1)
    }

    /// An error unless the view fits a storage of `len` elements.
    fn check_within(&self, len: usize) -> Result<()> {
        // As `gather_strided` reads it: no more values than the storage holds, none past it.
        let fits = self.size.len() == self.stride.len()
            && match (self.numel(), self.extent()) {
                (Some(0), _) => true,
                (Some(n), Some(e)) => n <= len && e <= len,
                _ => false,
            };
        if fits { Ok(()) } else { Err(self.outside(len)) }
    }

    /// The error of a view that does not fit a storage of `len` elements.
    fn outside(&self, len: usize) -> Error {
        bad(format!(
            "tensor {}: shape {:?} with strides {:?} from offset {} reaches outside its storage of {len} values (damaged or truncated file?)",
            quoted(&self.name),
            self.size,
            self.stride,
            self.offset
        ))
    }
}

/// The tensors of the unpickled checkpoint, read from its state dict (bare or wrapped in
/// `{"state_dict": …}` / `{"model": …}`), no storage touched.
fn tensor_refs(root: &Value) -> Result<Vec<TensorRef>> {
    let dict = ["state_dict", "model"]
        .iter()
        .find_map(|k| root.get(k).filter(|v| matches!(v, Value::Dict(_))))
        .unwrap_or(root);
    let Value::Dict(items) = dict else {
        return Err(bad(
            "the checkpoint is not a state_dict (a dict of tensors)",
        ));
    };
    let mut out = Vec::new();
    for (k, v) in items {
        let Some(name) = k.as_str() else { continue };
        let name = name.strip_prefix("module.").unwrap_or(name).to_string();
        let r = tensor_ref(v, name.clone())
            .map_err(|e| bad(format!("tensor {}: {}", quoted(&name), detail(e))))?;
        out.push(r);
    }
    Ok(out)
}

/// An error when the tensors together hold more values than one model may (before any is read).
fn check_total(refs: &[TensorRef]) -> Result<()> {
    let total = refs
        .iter()
        .try_fold(0usize, |acc, r| acc.checked_add(r.numel()?));
    if total.is_none_or(|t| t > MAX_DECODED_VALUES) {
        return Err(bad(format!(
            "the tensors hold more than {} M values, over the limit for one model",
            MAX_DECODED_VALUES >> 20
        )));
    }
    Ok(())
}

fn shapes_of(refs: &[TensorRef]) -> Vec<(String, Vec<usize>)> {
    refs.iter()
        .map(|r| (r.name.clone(), r.size.clone()))
        .collect()
}

/// Per storage key, the bytes its views reach (in key order); an error when a view reaches
/// further into its storage than one model may hold values (a sparse stride over gigabytes).
fn bytes_needed(refs: &[TensorRef]) -> Result<Vec<(String, u64)>> {
    let mut needed: std::collections::BTreeMap<String, u64> = Default::default();
    for r in refs {
        let extent = r.extent().unwrap_or(usize::MAX);
        if extent > MAX_DECODED_VALUES {
            return Err(bad(format!(
                "tensor {} reaches {extent} values into its storage, over the limit of {} M for one model",
                quoted(&r.name),
                MAX_DECODED_VALUES >> 20
            )));
        }
        let e = needed.entry(r.key.clone()).or_default();
        *e = (*e).max((extent * r.elem) as u64);
    }
    Ok(needed.into_iter().collect())
}

/// The state dict: each view gathered from its storage's bytes.
fn build(refs: Vec<TensorRef>, storages: &HashMap<String, Vec<u8>>) -> Result<StateDict> {
    let mut out = StateDict::new();
    for r in refs {
        let bytes = storages
            .get(&r.key)
            .ok_or_else(|| bad(format!("storage {} is missing", quoted(&r.key))))?;
        let storage = decode_storage(bytes, r.dtype);
        let data = gather_strided(&storage, r.offset, &r.size, &r.stride)
            .ok_or_else(|| r.outside(storage.len()))?;
        out.insert(r.name, HostTensor::new(r.size, data));
    }
    Ok(out)
}

fn tensor_ref(v: &Value, name: String) -> Result<TensorRef> {
    let Value::Call(callable, args) = v else {
        return Err(bad("not a tensor"));
    };
    let Value::Global(_, func) = callable.as_ref() else {
        return Err(bad("not a tensor"));
    };
    match func.as_str() {
        "_rebuild_parameter" => {
            let inner = args.first().ok_or_else(|| bad("empty parameter"))?;
            tensor_ref(inner, name)
        }
        "_rebuild_tensor_v2" | "_rebuild_tensor" => {
            let (Some(Value::PersistentId(pid)), Some(offset), Some(size), Some(stride)) =
                (args.first(), args.get(1), args.get(2), args.get(3))
            else {
                return Err(bad("unexpected tensor layout"));
            };
            let pid = pid.as_seq().ok_or_else(|| bad("bad storage reference"))?;
            let (Some(Value::Global(_, class)), Some(key)) =
                (pid.get(1), pid.get(2).and_then(Value::as_str))
            else {
                return Err(bad("bad storage reference"));
            };
            let (dtype, elem) = storage_dtype(class)
                .ok_or_else(|| bad(format!("unsupported storage type {}", quoted(class))))?;
            let offset = usize::try_from(offset.as_int().unwrap_or(0))
                .map_err(|_| bad("negative storage offset (damaged file?)"))?;
            Ok(TensorRef {
                name,
                key: key.to_string(),
                dtype,
                elem,
                offset,
                size: ints(size, "size")?,
                stride: ints(stride, "stride")?,
            })
        }
        other => Err(bad(format!("unsupported object {}", quoted(other)))),
    }
}
