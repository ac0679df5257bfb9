//! A small pickle reader: enough of Python's pickle machine to read PyTorch checkpoints.
//!
//! It builds values, it never calls anything: `GLOBAL` + `REDUCE` becomes a [`Value::Call`]
//! description that the checkpoint reader interprets (only tensors and ordered dicts).

use std::collections::HashMap;

use crate::error::quoted;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A dict (also `collections.OrderedDict`), in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A reference to `module.name`.
    Global(String, String),
    /// `callable(*args)`, as `REDUCE` or `NEWOBJ` would have made it.
    Call(Box<Value>, Vec<Value>),
    /// A persistent id (PyTorch's storage references).
    PersistentId(Box<Value>),
}

impl Value {
    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside, if this is an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// A dict's value by string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Why a pickle stream could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError(pub String);

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError(msg.into()))
}

/// Values nested deeper than this are refused: everything that reads a [`Value`] (and drops
/// it) recurses once per level, and a PyTorch state_dict nests about 5 levels deep.
pub const MAX_DEPTH: usize = 256;

/// The most memory the values may take, counting each copy the memo hands out: a few hundred
/// bytes of pickle can otherwise double a list through memo re-reads until memory runs out.
/// A ResNet18 checkpoint's pickle needs well under 1 MiB.
pub const MAX_VALUE_BYTES: usize = 64 << 20;

/// What a value costs: its nesting depth and about how much memory it takes.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    depth: usize,
    bytes: usize,
}

impl Cost {
    /// A leaf holding `payload` bytes (strings, byte strings).
    fn leaf(payload: usize) -> Cost {
        Cost {
            depth: 1,
            bytes: std::mem::size_of::<Value>() + payload,
        }
    }

    /// A container of `items`.
    fn of<'c>(items: impl IntoIterator<Item = &'c Cost>) -> Cost {
        items
            .into_iter()
            .fold(Cost::leaf(0), |acc, c| acc.holding(*c))
    }

    /// This container after `item` was put in it.
    fn holding(self, item: Cost) -> Cost {
        Cost {
            depth: self.depth.max(item.depth + 1),
            bytes: self.bytes.saturating_add(item.bytes),
        }
    }
}

/// `cost` after items costing `items` were put in its container; returns the new cost.
fn grow(cost: &mut Cost, items: &[Cost]) -> Cost {
    for c in items {
        *cost = cost.holding(*c);
    }
    *cost
}

/// A stack entry: a value with its cost, or a `MARK`.
#[derive(Debug, Clone)]
enum Slot {
    Mark,
    Val(Value, Cost),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, (Value, Cost)>,
    /// Memory taken by the values made so far (copies included), against
    /// [`MAX_VALUE_BYTES`].
    made: usize,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if n > self.data.len() - self.pos {
            return err(format!(
                "a pickle field claims {n} bytes where {} are left (damaged or truncated file?)",
                self.data.len() - self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return err("pickle stream ends inside a text field");
        };
        self.pos += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    /// Count `cost` against the limits; every value made goes through here.
    fn charge(&mut self, cost: Cost) -> Result<(), PickleError> {
        if cost.depth > MAX_DEPTH {
            return err(format!(
                "pickle values nest deeper than {MAX_DEPTH} levels (a damaged or hostile file)"
            ));
        }
        self.made = self.made.saturating_add(cost.bytes);
        if self.made > MAX_VALUE_BYTES {
            return err(format!(
                "pickle values would take more than {} MiB (a damaged or hostile file)",
                MAX_VALUE_BYTES >> 20
            ));
        }
        Ok(())
    }

    /// Push a new leaf holding `payload` bytes.
    fn push_leaf(&mut self, v: Value, payload: usize) -> Result<(), PickleError> {
        let cost = Cost::leaf(payload);
        self.charge(cost)?;
        self.stack.push(Slot::Val(v, cost));
        Ok(())
    }

    fn push(&mut self, v: Value) -> Result<(), PickleError> {
        self.push_leaf(v, 0)
    }

    /// Push a container made of `items` (already counted: only the container is new).
    fn push_container(&mut self, v: Value, items: &[Cost]) -> Result<(), PickleError> {
        let cost = Cost::of(items);
        self.check_depth(cost)?;
        self.made = self.made.saturating_add(Cost::leaf(0).bytes);
        self.stack.push(Slot::Val(v, cost));
        Ok(())
    }

    fn pop(&mut self) -> Result<(Value, Cost), PickleError> {
        match self.stack.pop() {
            Some(Slot::Val(v, c)) => Ok((v, c)),
            Some(Slot::Mark) => err("unexpected MARK on the pickle stack"),
            None => err("pickle stack underflow"),
        }
    }

    fn top(&mut self) -> Result<(&mut Value, &mut Cost), PickleError> {
        match self.stack.last_mut() {
            Some(Slot::Val(v, c)) => Ok((v, c)),
            _ => err("pickle stack underflow"),
        }
    }

    fn pop_mark(&mut self) -> Result<(Vec<Value>, Vec<Cost>), PickleError> {
        let Some(mark) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return err("pickle MARK not found");
        };
        let (items, costs) = self
            .stack
            .drain(mark + 1..)
            .map(|s| match s {
                Slot::Val(v, c) => (v, c),
                Slot::Mark => (Value::None, Cost::leaf(0)),
            })
            .unzip();
        self.stack.pop();
        Ok((items, costs))
    }

    /// A copy of the top value (`PUT`, `DUP`), counted: copies are where memory can grow
    /// faster than the stream.
    fn copy_top(&mut self) -> Result<(Value, Cost), PickleError> {
        let (_, cost) = self.top()?;
        let cost = *cost;
        self.charge(cost)?;
        let (v, _) = self.top()?;
        Ok((v.clone(), cost))
    }

    fn memo_put(&mut self, id: u32) -> Result<(), PickleError> {
        let copy = self.copy_top()?;
        self.memo.insert(id, copy);
        Ok(())
    }

    fn memo_get(&mut self, id: u32) -> Result<(), PickleError> {
        let Some((_, cost)) = self.memo.get(&id) else {
            return err(format!("pickle memo {id} is missing"));
        };
        let cost = *cost;
        self.charge(cost)?;
        if let Some((v, _)) = self.memo.get(&id) {
            let v = v.clone();
            self.stack.push(Slot::Val(v, cost));
        }
        Ok(())
    }

    /// Add `key, value` pairs to the dict on top.
    fn set_items(&mut self, items: Vec<Value>, costs: &[Cost]) -> Result<(), PickleError> {
        let (target, cost) = self.top()?;
        let Value::Dict(dict) = target else {
            return err("SETITEMS on something that is not a dict");
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            dict.push((k, v));
        }
        let grown = grow(cost, costs);
        self.check_depth(grown)
    }

    /// Add items to the list on top.
    fn append_items(&mut self, items: Vec<Value>, costs: &[Cost]) -> Result<(), PickleError> {
        let (target, cost) = self.top()?;
        let Value::List(list) = target else {
            return err("APPENDS on something that is not a list");
        };
        list.extend(items);
        let grown = grow(cost, costs);
        self.check_depth(grown)
    }

    fn check_depth(&mut self, cost: Cost) -> Result<(), PickleError> {
        if cost.depth > MAX_DEPTH {
            return self.charge(cost);
        }
        Ok(())
    }

    fn call(callable: Value, args: Vec<Value>) -> Value {
        match &callable {
            // An OrderedDict is built empty and filled by SETITEMS.
            Value::Global(m, n) if m == "collections" && n == "OrderedDict" => {
                Value::Dict(Vec::new())
            }
            _ => Value::Call(Box::new(callable), args),
        }
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                b'.' => return Ok(self.pop()?.0),
                b'(' => self.stack.push(Slot::Mark),
                b'}' => self.push(Value::Dict(Vec::new()))?,
                b']' => self.push(Value::List(Vec::new()))?,
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v))?
                }
                b'M' => {
                    let v = self.u16()? as i64;
                    self.push(Value::Int(v))?
                }
                b'J' => {
                    let v = self.u32()? as i32 as i64;
                    self.push(Value::Int(v))?
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32()? as usize
                    };
                    let b = self.take(n)?;
                    if n > 8 {
                        return err("integer too large in pickle");
                    }
                    let mut buf = if b.last().is_some_and(|&x| x & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.push(Value::Int(i64::from_le_bytes(buf)))?
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let t = line.trim_end_matches('L');
                    let v = match t {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        _ => Value::Int(
                            t.parse()
                                .map_err(|_| PickleError(format!("bad integer {}", quoted(t))))?,
                        ),
                    };
                    self.push(v)?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Value::Float(f64::from_be_bytes(a)))?
                }
                b'F' => {
                    let line = self.line()?;
                    let v = line
                        .trim()
                        .parse()
                        .map_err(|_| PickleError(format!("bad float {}", quoted(&line))))?;
                    self.push(Value::Float(v))?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as usize,
                        0x8c => self.u8()? as usize,
                        _ => {
                            let b = self.take(8)?;
                            let mut a = [0u8; 8];
                            a.copy_from_slice(b);
                            u64::from_le_bytes(a) as usize
                        }
                    };
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push_leaf(Value::Str(s), n)?
                }
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push_leaf(Value::Str(s), n)?
                }
                b'V' | b'S' => {
                    let line = self.line()?;
                    let s = line.trim_matches(|c| c == '\'' || c == '"').to_string();
                    let n = s.len();
                    self.push_leaf(Value::Str(s), n)?
                }
                b'B' | b'C' => {
                    let n = if op == b'B' {
                        self.u32()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    let b = self.take(n)?.to_vec();
                    self.push_leaf(Value::Bytes(b), n)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let n = module.len() + name.len();
                    self.push_leaf(Value::Global(module, name), n)?
                }
                0x93 => {
                    let (name, _) = self.pop()?;
                    let (module, _) = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let len = m.len() + n.len();
                            self.push_leaf(Value::Global(m, n), len)?
                        }
                        _ => return err("STACK_GLOBAL needs two strings"),
                    }
                }
                b't' => {
                    let (items, costs) = self.pop_mark()?;
                    self.push_container(Value::Tuple(items), &costs)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    let mut costs = Vec::with_capacity(n);
                    for _ in 0..n {
                        let (v, c) = self.pop()?;
                        items.push(v);
                        costs.push(c);
                    }
                    items.reverse();
                    self.push_container(Value::Tuple(items), &costs)?
                }
                b'l' => {
                    let (items, costs) = self.pop_mark()?;
                    self.push_container(Value::List(items), &costs)?
                }
                b'd' => {
                    let (items, costs) = self.pop_mark()?;
                    self.push(Value::Dict(Vec::new()))?;
                    self.set_items(items, &costs)?
                }
                b'q' => {
                    let id = self.u8()? as u32;
                    self.memo_put(id)?
                }
                b'r' => {
                    let id = self.u32()?;
                    self.memo_put(id)?
                }
                b'p' => {
                    let id = self
                        .line()?
                        .parse()
                        .map_err(|_| PickleError("bad PUT index".into()))?;
                    self.memo_put(id)?
                }
                0x94 => {
                    let id = self.memo.len() as u32;
                    self.memo_put(id)?
                }
                b'h' => {
                    let id = self.u8()? as u32;
                    self.memo_get(id)?
                }
                b'j' => {
                    let id = self.u32()?;
                    self.memo_get(id)?
                }
                b'g' => {
                    let id = self
                        .line()?
                        .parse()
                        .map_err(|_| PickleError("bad GET index".into()))?;
                    self.memo_get(id)?
                }
                b'R' | 0x81 => {
                    // REDUCE takes an argument tuple; NEWOBJ a class and its arguments.
                    let (args, args_cost) = self.pop()?;
                    let (callable, callable_cost) = self.pop()?;
                    let args = match args {
                        Value::Tuple(a) => a,
                        other if op == b'R' => vec![other],
                        other => other.as_seq().map(<[Value]>::to_vec).unwrap_or_default(),
                    };
                    let call = Self::call(callable, args);
                    self.push_container(call, &[args_cost, callable_cost])?
                }
                b'b' => {
                    // BUILD: object state. Dicts keep their items; other objects keep the
                    // state as their last argument, for the reader to inspect if it cares.
                    let (state, state_cost) = self.pop()?;
                    let (target, cost) = self.top()?;
                    if let Value::Call(_, args) = target {
                        args.push(state);
                        let grown = grow(cost, &[state_cost]);
                        self.check_depth(grown)?;
                    }
                }
                b's' => {
                    let (v, vc) = self.pop()?;
                    let (k, kc) = self.pop()?;
                    self.set_items(vec![k, v], &[kc, vc])?
                }
                b'u' => {
                    let (items, costs) = self.pop_mark()?;
                    self.set_items(items, &costs)?
                }
                b'a' => {
                    let (v, c) = self.pop()?;
                    self.append_items(vec![v], &[c])?
                }
                b'e' => {
                    let (items, costs) = self.pop_mark()?;
                    self.append_items(items, &costs)?
                }
                b'Q' => {
                    let (pid, cost) = self.pop()?;
                    self.push_container(Value::PersistentId(Box::new(pid)), &[cost])?
                }
                b'P' => {
                    let pid = self.line()?;
                    let n = pid.len();
                    self.push_leaf(Value::PersistentId(Box::new(Value::Str(pid))), n)?
                }
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let (v, cost) = self.copy_top()?;
                    self.stack.push(Slot::Val(v, cost))
                }
                other => return err(format!("unsupported pickle opcode 0x{other:02x}")),
            }
        }
    }
}

/// Read one pickled value from the start of `data`; also returns how many bytes it used.
pub fn load(data: &[u8]) -> Result<(Value, usize), PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        made: 0,
    };
    let v = m.run()?;
    Ok((v, m.pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protocol2_dict_tuple_and_ints() {
        // pickle.dumps({'a': (1, 300, -2), 'b': 'x'}, protocol=2)
        let data = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01M,\x01J\xfe\xff\xff\xff\x87q\x02X\x01\x00\x00\x00bq\x03X\x01\x00\x00\x00xq\x04u.";
        let (v, used) = load(data).unwrap();
        assert_eq!(used, data.len());
        assert_eq!(
            v.get("a"),
            Some(&Value::Tuple(vec![
                Value::Int(1),
                Value::Int(300),
                Value::Int(-2)
            ]))
        );
        assert_eq!(v.get("b").and_then(Value::as_str), Some("x"));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let data = b"\x80\x02}q\x00(X\x01\x00\x00";
        assert!(load(data).is_err());
    }
}
