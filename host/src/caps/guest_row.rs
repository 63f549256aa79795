//! How `tables.upsert-row`'s row leaves the flow's memory: [`GuestRow`] lifts the whole
//! `list<tuple<string, cell>>` in one pass over the memory slice, copying every name and text
//! into one buffer (each piece checked as a string of the flow's encoding), so the host sees
//! the row as `(&str, CellRef)` pairs borrowed from that buffer.
//!
//! wasmtime's generic lift of the same list (`WasmList<(WasmStr, GuestCell)>`) looks up the
//! flow's memory and its options again for every element and every string, and cost about as
//! much CPU as the SQLite insert of the row (issue 20). This reads the list as the canonical
//! ABI lays it out; the layout is derived from the [`GuestCell`] type wasmtime checks against
//! the contract, so a contract whose `cell` differs is refused at link time, not misread.
//!
//! Every read is bounds-checked: a pointer or length outside the flow's memory, a case or
//! boolean no `cell` has, or a string that is not valid in the flow's encoding is an error,
//! which traps the flow (as wasmtime's own lift does).

use std::ops::Range;

use wasmtime::component::__internal::{
    wasmtime_environ::component::StringEncoding, CanonicalAbiInfo, InstanceType, InterfaceType,
    LiftContext,
};
use wasmtime::component::{ComponentType, Lift, WasmStr};
use wasmtime::ValRaw;

use super::cells::{CellRef, GuestCell};

/// One element of the list as wasmtime types it: what [`GuestRow`] is checked against.
type Element = (WasmStr, GuestCell);

/// A typed row read from the flow's memory: every name and text in one buffer.
#[derive(Debug, Default, PartialEq)]
pub struct GuestRow {
    text: String,
    cells: Vec<(Range<usize>, Slot)>,
}

/// A cell whose text (if any) is a range of [`GuestRow::text`].
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Null,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    Text(Range<usize>),
    Json(Range<usize>),
}

impl GuestRow {
    /// The `(column, cell)` pairs in the order the flow gave them.
    pub fn cells(&self) -> impl Iterator<Item = (&str, CellRef<'_>)> + '_ {
        let text = |r: &Range<usize>| self.text.get(r.clone()).unwrap_or_default();
        self.cells.iter().map(move |(name, slot)| {
            let cell = match slot {
                Slot::Null => CellRef::Null,
                Slot::Boolean(b) => CellRef::Boolean(*b),
                Slot::Integer(n) => CellRef::Integer(*n),
                Slot::Number(n) => CellRef::Number(*n),
                Slot::Text(r) => CellRef::Text(text(r).into()),
                Slot::Json(r) => CellRef::Json(text(r).into()),
            };
            (text(name), cell)
        })
    }

    /// Reads `len` elements at `ptr` of `memory`, whose strings are in `encoding`.
    fn read(
        memory: &[u8],
        encoding: StringEncoding,
        ptr: usize,
        len: usize,
    ) -> Result<Self, String> {
        let stride = Element::SIZE32;
        let list = len
            .checked_mul(stride)
            .and_then(|size| Some(ptr..ptr.checked_add(size)?))
            .and_then(|range| memory.get(range))
            .ok_or("list pointer/length out of bounds of memory")?;
        if !ptr.is_multiple_of(Element::ALIGN32 as usize) {
            return Err("list pointer is not aligned".into());
        }
        let mut row = GuestRow {
            text: String::with_capacity(list.len() * 8),
            cells: Vec::with_capacity(len),
        };
        let reader = Reader { memory, encoding };
        for element in list.chunks_exact(stride) {
            let name = reader.string(element, 0, &mut row.text)?;
            let slot = reader.cell(element, CELL_AT, &mut row.text)?;
            row.cells.push((name, slot));
        }
        Ok(row)
    }
}

/// Where the cell lies in an element: after the name's pointer pair, at the cell's alignment.
const CELL_AT: usize = align(8, GuestCell::ALIGN32);
/// Where a cell's payload lies: after its one-byte case, at the cell's alignment (the largest
/// of its cases').
const PAYLOAD_AT: usize = align(1, GuestCell::ALIGN32);

const fn align(offset: usize, to: u32) -> usize {
    let to = to as usize;
    offset.div_ceil(to) * to
}

/// Reads the parts of one element out of the flow's memory.
struct Reader<'m> {
    memory: &'m [u8],
    encoding: StringEncoding,
}

impl Reader<'_> {
    /// The cell at `at` of `element`; its text (if any) appended to `text`.
    fn cell(&self, element: &[u8], at: usize, text: &mut String) -> Result<Slot, String> {
        let payload = at + PAYLOAD_AT;
        // The cases in the order of the contract's `cell` (checked through `GuestCell`).
        Ok(match byte(element, at)? {
            0 => Slot::Null,
            1 => match byte(element, payload)? {
                0 => Slot::Boolean(false),
                1 => Slot::Boolean(true),
                _ => return Err("invalid boolean value".into()),
            },
            2 => Slot::Integer(i64::from_le_bytes(bytes8(element, payload)?)),
            3 => Slot::Number(f64::from_le_bytes(bytes8(element, payload)?)),
            4 => Slot::Text(self.string(element, payload, text)?),
            5 => Slot::Json(self.string(element, payload, text)?),
            case => return Err(format!("unexpected discriminant: {case}")),
        })
    }

    /// The string whose pointer pair is at `at` of `element`, appended to `text`; its range
    /// there.
    fn string(&self, element: &[u8], at: usize, text: &mut String) -> Result<Range<usize>, String> {
        let [p0, p1, p2, p3, l0, l1, l2, l3] = bytes8(element, at)?;
        let ptr = u32::from_le_bytes([p0, p1, p2, p3]) as usize;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let start = text.len();
        decode(self.memory, self.encoding, ptr, len, text)?;
        Ok(start..text.len())
    }
}

fn byte(element: &[u8], at: usize) -> Result<u8, String> {
    element
        .get(at)
        .copied()
        .ok_or_else(|| "element shorter than its type".into())
}

fn bytes8(element: &[u8], at: usize) -> Result<[u8; 8], String> {
    element
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "element shorter than its type".into())
}

/// Bit of a compact-UTF-16 string's length that says it is UTF-16 (else Latin-1).
const UTF16_TAG: usize = 1 << 31;

/// Appends the string of `len` code units at `ptr` of `memory`, in `encoding`, to `out`.
fn decode(
    memory: &[u8],
    encoding: StringEncoding,
    ptr: usize,
    len: usize,
    out: &mut String,
) -> Result<(), String> {
    let (units, wide) = match encoding {
        StringEncoding::Utf8 => (len, false),
        StringEncoding::Utf16 => (len, true),
        StringEncoding::CompactUtf16 if len & UTF16_TAG != 0 => (len ^ UTF16_TAG, true),
        StringEncoding::CompactUtf16 => (len, false),
    };
    let size = if wide {
        units.checked_mul(2)
    } else {
        Some(units)
    };
    let bytes = size
        .and_then(|size| memory.get(ptr..ptr.checked_add(size)?))
        .ok_or("string pointer/length out of bounds of memory")?;
    match encoding {
        // simdutf8 checks an event's text several times faster than std (a third of this
        // lift's time was the check); std says where a bad text goes wrong.
        StringEncoding::Utf8 => match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => out.push_str(text),
            Err(_) => {
                let e = std::str::from_utf8(bytes).err();
                return Err(e.map_or("invalid utf-8".into(), |e| format!("invalid utf-8: {e}")));
            }
        },
        _ if wide => {
            if !ptr.is_multiple_of(2) {
                return Err("string pointer not aligned to 2".into());
            }
            let units = bytes
                .chunks_exact(2)
                .map(|u| u16::from_le_bytes([u[0], u[1]]));
            for c in char::decode_utf16(units) {
                out.push(c.map_err(|e| format!("invalid utf-16: {e}"))?);
            }
        }
        // Latin-1: each byte is the code point of the same number.
        _ => out.extend(bytes.iter().map(|&b| char::from(b))),
    }
    Ok(())
}

// SAFETY: `GuestRow` is lowered and lifted exactly as `WasmList<(WasmStr, GuestCell)>` (a
// pointer pair, the same `Lower` and ABI), and accepts exactly the types that list accepts
// (the same `typecheck`); it never lowers.
unsafe impl ComponentType for GuestRow {
    type Lower = [ValRaw; 2];

    const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[Element] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: reads the flow's memory only through the bounds-checked slice `cx.memory()`.
unsafe impl Lift for GuestRow {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let [ptr, len] = src;
        lift(cx, ptr.get_u32(), len.get_u32())
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        _ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        match bytes {
            [p0, p1, p2, p3, l0, l1, l2, l3, ..] => lift(
                cx,
                u32::from_le_bytes([*p0, *p1, *p2, *p3]),
                u32::from_le_bytes([*l0, *l1, *l2, *l3]),
            ),
            _ => wasmtime::bail!("list pointer pair out of bounds"),
        }
    }
}

fn lift(cx: &mut LiftContext<'_>, ptr: u32, len: u32) -> wasmtime::Result<GuestRow> {
    let encoding = cx.options().string_encoding;
    GuestRow::read(cx.memory(), encoding, ptr as usize, len as usize)
        .map_err(|e| wasmtime::format_err!("tables.upsert-row: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow's memory holding one list: elements at 0, strings after them.
    struct Memory {
        bytes: Vec<u8>,
        elements: usize,
    }

    impl Memory {
        fn new(elements: usize) -> Self {
            let bytes = vec![0; elements * Element::SIZE32];
            Memory { bytes, elements: 0 }
        }

        /// Writes `s` after everything written so far; its pointer pair.
        fn string(&mut self, s: &[u8], units: u32) -> [u8; 8] {
            while !self.bytes.len().is_multiple_of(2) {
                self.bytes.push(0);
            }
            let ptr = self.bytes.len() as u32;
            self.bytes.extend_from_slice(s);
            let mut pair = [0; 8];
            pair[..4].copy_from_slice(&ptr.to_le_bytes());
            pair[4..].copy_from_slice(&units.to_le_bytes());
            pair
        }

        /// Adds an element: `name` and a cell of `case` with `payload`.
        fn push(&mut self, name: &str, case: u8, payload: [u8; 8]) {
            let name = self.string(name.as_bytes(), name.len() as u32);
            let at = self.elements * Element::SIZE32;
            self.bytes[at..at + 8].copy_from_slice(&name);
            self.bytes[at + CELL_AT] = case;
            let p = at + CELL_AT + PAYLOAD_AT;
            self.bytes[p..p + 8].copy_from_slice(&payload);
            self.elements += 1;
        }

        fn text(&mut self, name: &str, case: u8, text: &str) {
            let pair = self.string(text.as_bytes(), text.len() as u32);
            self.push(name, case, pair);
        }

        fn read(&self) -> Result<Vec<(String, CellRef<'static>)>, String> {
            let row = GuestRow::read(&self.bytes, StringEncoding::Utf8, 0, self.elements)?;
            Ok(row
                .cells()
                .map(|(n, c)| (n.to_string(), owned(c)))
                .collect())
        }
    }

    fn owned(c: CellRef<'_>) -> CellRef<'static> {
        match c {
            CellRef::Text(t) => CellRef::Text(t.into_owned().into()),
            CellRef::Json(t) => CellRef::Json(t.into_owned().into()),
            CellRef::Null => CellRef::Null,
            CellRef::Boolean(b) => CellRef::Boolean(b),
            CellRef::Integer(n) => CellRef::Integer(n),
            CellRef::Number(n) => CellRef::Number(n),
        }
    }

    #[test]
    fn the_layout_is_the_canonical_abis() {
        // tuple<string, cell>: the name's pointer pair, then the cell (a one-byte case and an
        // 8-byte payload at 8), 24 bytes aligned to 8.
        assert_eq!((Element::SIZE32, Element::ALIGN32), (24, 8));
        assert_eq!((CELL_AT, PAYLOAD_AT), (8, 8));
    }

    #[test]
    fn every_case_is_read_in_the_order_given() {
        let mut m = Memory::new(7);
        m.text("id", 4, "e1");
        m.push("n", 2, (-3i64).to_le_bytes());
        m.push("x", 3, 1.5f64.to_le_bytes());
        m.push("ok", 1, [1, 0, 0, 0, 0, 0, 0, 0]);
        m.push("gone", 0, [0; 8]);
        m.text("doc", 5, r#"{"a": [1]}"#);
        m.text("név", 4, "é \u{1F600}");
        assert_eq!(
            m.read().unwrap(),
            [
                ("id".to_string(), CellRef::Text("e1".into())),
                ("n".into(), CellRef::Integer(-3)),
                ("x".into(), CellRef::Number(1.5)),
                ("ok".into(), CellRef::Boolean(true)),
                ("gone".into(), CellRef::Null),
                ("doc".into(), CellRef::Json(r#"{"a": [1]}"#.into())),
                ("név".into(), CellRef::Text("é \u{1F600}".into())),
            ]
        );
        assert_eq!(Memory::new(0).read().unwrap(), []);
    }

    #[test]
    fn what_no_cell_can_be_is_refused_without_reading_past_memory() {
        let mut m = Memory::new(1);
        m.push("b", 1, [2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(m.read().unwrap_err(), "invalid boolean value");
        let mut m = Memory::new(1);
        m.push("c", 6, [0; 8]);
        assert_eq!(m.read().unwrap_err(), "unexpected discriminant: 6");
        // A text reaching past the end of memory, and one that is not UTF-8.
        let mut m = Memory::new(1);
        let mut pair = m.string(b"abc", 3);
        pair[4..].copy_from_slice(&1000u32.to_le_bytes());
        m.push("t", 4, pair);
        assert_eq!(
            m.read().unwrap_err(),
            "string pointer/length out of bounds of memory"
        );
        // A bad byte is refused where it is, in a short text and deep in a long one (the
        // check takes long texts in wide blocks), with std's words for where.
        for at in [2, 200] {
            let mut text = "é".repeat(150).into_bytes();
            text.truncate(at);
            text.extend_from_slice(&[0xff, b'a']);
            text.extend_from_slice(&[b'z'; 100]);
            let mut m = Memory::new(1);
            let pair = m.string(&text, text.len() as u32);
            m.push("t", 4, pair);
            assert_eq!(
                m.read().unwrap_err(),
                format!("invalid utf-8: invalid utf-8 sequence of 1 bytes from index {at}")
            );
        }
        let mut m = Memory::new(1);
        let long = "é".repeat(150);
        let pair = m.string(long.as_bytes(), long.len() as u32);
        m.push("t", 4, pair);
        assert_eq!(
            m.read().unwrap(),
            [("t".to_string(), CellRef::Text(long.into()))]
        );
        // The list itself out of bounds or misaligned, and lengths that overflow.
        let m = Memory::new(1);
        let read = |ptr, len| GuestRow::read(&m.bytes, StringEncoding::Utf8, ptr, len);
        assert_eq!(
            read(0, 2).unwrap_err(),
            "list pointer/length out of bounds of memory"
        );
        assert_eq!(
            read(usize::MAX - 4, 1).unwrap_err(),
            "list pointer/length out of bounds of memory"
        );
        assert_eq!(
            read(0, usize::MAX).unwrap_err(),
            "list pointer/length out of bounds of memory"
        );
        let mut m = Memory::new(2);
        m.push("a", 0, [0; 8]);
        let row = GuestRow::read(&m.bytes, StringEncoding::Utf8, 4, 1);
        assert_eq!(row.unwrap_err(), "list pointer is not aligned");
    }

    #[test]
    fn utf16_and_latin1_strings_are_read_too() {
        let mut out = String::new();
        let wide: Vec<u8> = "é\u{1F600}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        decode(&wide, StringEncoding::Utf16, 0, 3, &mut out).unwrap();
        assert_eq!(out, "é\u{1F600}");
        out.clear();
        decode(
            &wide,
            StringEncoding::CompactUtf16,
            0,
            3 | UTF16_TAG,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, "é\u{1F600}");
        out.clear();
        decode(&[b'a', 0xe9], StringEncoding::CompactUtf16, 0, 2, &mut out).unwrap();
        assert_eq!(out, "aé");
        // A lone surrogate, an odd pointer, a length past memory.
        let lone = 0xd800u16.to_le_bytes();
        assert!(decode(&lone, StringEncoding::Utf16, 0, 1, &mut out).is_err());
        assert!(decode(&[0, 0, 0], StringEncoding::Utf16, 1, 1, &mut out).is_err());
        assert!(decode(&wide, StringEncoding::Utf16, 0, usize::MAX, &mut out).is_err());
    }
}
