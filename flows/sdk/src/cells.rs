//! A row as typed cells for `tables.upsert-row`: any `Serialize` struct or map becomes
//! `(column, cell)` pairs with no JSON text in between, so a long text column (a related
//! object's JSON) is copied to the host as it is instead of being escaped here and parsed
//! there. (A flow holding its row's texts already gives them as cells itself, copying nothing:
//! `tables::upsert_cells`.)
//!
//! The cells say what `serde_json` would have written: numbers, booleans, strings and `null` as
//! such, anything nested (arrays, objects, a `RawValue`) as its JSON text. A value that is no
//! struct or map with string keys gives `None`, and the caller sends JSON text as before, so
//! the host's answer (refusal included) is the same either way.
//!
//! Column names and texts are copied into one buffer and the host is handed slices of it (the
//! bindings borrow), so a row costs a few allocations rather than two per column.

use std::ops::Range;

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};

use crate::bindings::flowhost::flow::tables::Cell;

/// A row's cells, their texts kept in one buffer.
#[derive(Debug, Default)]
pub(crate) struct Cells {
    text: String,
    pairs: Vec<(Range<usize>, Slot)>,
}

/// A cell whose text (if any) is a range of [`Cells::text`].
#[derive(Debug, Clone)]
enum Slot {
    Null,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    Text(Range<usize>),
    Json(Range<usize>),
}

impl Cells {
    /// `f` of the cells as the host takes them.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&[(&str, Cell<'_>)]) -> R) -> R {
        let text = |r: &Range<usize>| self.text.get(r.clone()).unwrap_or_default();
        let cells: Vec<(&str, Cell<'_>)> = self
            .pairs
            .iter()
            .map(|(k, slot)| {
                let cell = match slot {
                    Slot::Null => Cell::Null,
                    Slot::Boolean(b) => Cell::Boolean(*b),
                    Slot::Integer(n) => Cell::Integer(*n),
                    Slot::Number(n) => Cell::Number(*n),
                    Slot::Text(r) => Cell::Text(text(r)),
                    Slot::Json(r) => Cell::Json(text(r)),
                };
                (text(k), cell)
            })
            .collect();
        f(&cells)
    }

    /// Appends `s` to the buffer; its range.
    fn put(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }
}

/// The cells of `row`, or `None` when `row` does not serialize as a JSON object.
pub(crate) fn of<T: Serialize + ?Sized>(row: &T) -> Option<Cells> {
    row.serialize(RowSer).ok()
}

/// Why a value has no typed form: the caller (or [`cell`]) falls back to JSON text.
#[derive(Debug)]
struct NoCell;

impl std::fmt::Display for NoCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no typed cell")
    }
}

impl std::error::Error for NoCell {}

impl ser::Error for NoCell {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        NoCell
    }
}

/// One column's cell: its scalar, or its JSON text when it is nested.
fn cell<T: Serialize + ?Sized>(cells: &mut Cells, value: &T) -> Result<Slot, NoCell> {
    match value.serialize(CellSer(cells)) {
        Ok(c) => Ok(c),
        Err(NoCell) => {
            let json = serde_json::to_string(value).map_err(|_| NoCell)?;
            Ok(Slot::Json(cells.put(&json)))
        }
    }
}

/// Serializes the row itself: only a struct or a map is one.
struct RowSer;

/// The cells collected so far, and the key waiting for its value (maps).
struct Pairs {
    cells: Cells,
    key: Option<Range<usize>>,
}

impl Pairs {
    fn with_capacity(n: usize) -> Self {
        let cells = Cells { text: String::with_capacity(1024), pairs: Vec::with_capacity(n) };
        Pairs { cells, key: None }
    }
}

impl SerializeStruct for Pairs {
    type Ok = Cells;
    type Error = NoCell;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NoCell> {
        let key = self.cells.put(key);
        let slot = cell(&mut self.cells, value)?;
        self.cells.pairs.push((key, slot));
        Ok(())
    }

    fn end(self) -> Result<Cells, NoCell> {
        Ok(self.cells)
    }
}

impl SerializeMap for Pairs {
    type Ok = Cells;
    type Error = NoCell;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), NoCell> {
        match key.serialize(CellSer(&mut self.cells))? {
            Slot::Text(k) => {
                self.key = Some(k);
                Ok(())
            }
            _ => Err(NoCell),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoCell> {
        let key = self.key.take().ok_or(NoCell)?;
        let slot = cell(&mut self.cells, value)?;
        self.cells.pairs.push((key, slot));
        Ok(())
    }

    fn end(self) -> Result<Cells, NoCell> {
        Ok(self.cells)
    }
}

/// Every `serialize_*` a row or a cell refuses (the caller falls back to JSON text).
macro_rules! no_cell {
    ($($f:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $f(self, $(_: $arg),*) -> Result<$ok, NoCell> { Err(NoCell) })*
    };
}

impl Serializer for RowSer {
    type Ok = Cells;
    type Error = NoCell;
    type SerializeSeq = Impossible<Self::Ok, NoCell>;
    type SerializeTuple = Impossible<Self::Ok, NoCell>;
    type SerializeTupleStruct = Impossible<Self::Ok, NoCell>;
    type SerializeTupleVariant = Impossible<Self::Ok, NoCell>;
    type SerializeMap = Pairs;
    type SerializeStruct = Pairs;
    type SerializeStructVariant = Impossible<Self::Ok, NoCell>;

    fn serialize_map(self, len: Option<usize>) -> Result<Pairs, NoCell> {
        Ok(Pairs::with_capacity(len.unwrap_or(16)))
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Pairs, NoCell> {
        // serde_json's RawValue serializes as a struct of this name: its text is the row.
        if name.starts_with("$serde_json") {
            return Err(NoCell);
        }
        Ok(Pairs::with_capacity(len))
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, NoCell> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Self::Ok, NoCell> {
        value.serialize(self)
    }

    no_cell! {
        serialize_bool(bool) -> Self::Ok;
        serialize_i8(i8) -> Self::Ok;
        serialize_i16(i16) -> Self::Ok;
        serialize_i32(i32) -> Self::Ok;
        serialize_i64(i64) -> Self::Ok;
        serialize_u8(u8) -> Self::Ok;
        serialize_u16(u16) -> Self::Ok;
        serialize_u32(u32) -> Self::Ok;
        serialize_u64(u64) -> Self::Ok;
        serialize_f32(f32) -> Self::Ok;
        serialize_f64(f64) -> Self::Ok;
        serialize_char(char) -> Self::Ok;
        serialize_str(&str) -> Self::Ok;
        serialize_bytes(&[u8]) -> Self::Ok;
        serialize_none() -> Self::Ok;
        serialize_unit() -> Self::Ok;
        serialize_unit_struct(&'static str) -> Self::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> Self::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, NoCell> {
        Err(NoCell)
    }
}

/// `serialize_*` of integer types that fit an `i64`: an integer cell.
macro_rules! integer_cells {
    ($($f:ident($t:ty)),* $(,)?) => {
        $(fn $f(self, v: $t) -> Result<Slot, NoCell> { Ok(Slot::Integer(i64::from(v))) })*
    };
}

/// Serializes one column's value into the row's buffer: a scalar becomes its cell; anything
/// nested is refused, and [`cell`] writes it as JSON text instead.
struct CellSer<'c>(&'c mut Cells);

impl Serializer for CellSer<'_> {
    type Ok = Slot;
    type Error = NoCell;
    type SerializeSeq = Impossible<Slot, NoCell>;
    type SerializeTuple = Impossible<Slot, NoCell>;
    type SerializeTupleStruct = Impossible<Slot, NoCell>;
    type SerializeTupleVariant = Impossible<Slot, NoCell>;
    type SerializeMap = Impossible<Slot, NoCell>;
    type SerializeStruct = Impossible<Slot, NoCell>;
    type SerializeStructVariant = Impossible<Slot, NoCell>;

    fn serialize_bool(self, v: bool) -> Result<Slot, NoCell> {
        Ok(Slot::Boolean(v))
    }
    integer_cells!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32)
    );
    fn serialize_u64(self, v: u64) -> Result<Slot, NoCell> {
        // Past i64, the JSON number's text (the host refuses it for an integer column, as it
        // would refuse the same JSON).
        Ok(match i64::try_from(v) {
            Ok(n) => Slot::Integer(n),
            Err(_) => Slot::Json(self.0.put(&v.to_string())),
        })
    }
    fn serialize_f64(self, v: f64) -> Result<Slot, NoCell> {
        // serde_json writes a NaN or an infinity as `null`.
        Ok(if v.is_finite() { Slot::Number(v) } else { Slot::Null })
    }
    fn serialize_char(self, v: char) -> Result<Slot, NoCell> {
        Ok(Slot::Text(self.0.put(v.encode_utf8(&mut [0; 4]))))
    }
    fn serialize_str(self, v: &str) -> Result<Slot, NoCell> {
        Ok(Slot::Text(self.0.put(v)))
    }
    fn serialize_none(self) -> Result<Slot, NoCell> {
        Ok(Slot::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Slot, NoCell> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Slot, NoCell> {
        Ok(Slot::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Slot, NoCell> {
        Ok(Slot::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Slot, NoCell> {
        Ok(Slot::Text(self.0.put(variant)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Slot, NoCell> {
        value.serialize(self)
    }

    // f32 (serde_json prints it with f32's shortest digits), 128-bit integers, bytes and
    // everything nested: JSON text.
    no_cell! {
        serialize_f32(f32) -> Slot;
        serialize_i128(i128) -> Slot;
        serialize_u128(u128) -> Slot;
        serialize_bytes(&[u8]) -> Slot;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Slot, NoCell> {
        Err(NoCell)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    use super::*;

    /// The JSON value the host makes of `cells` (caps/cells.rs does the same).
    fn as_json(cells: &Cells) -> Value {
        let mut row = serde_json::Map::new();
        cells.with(|cells| {
            for (k, c) in cells {
                let v = match c {
                    Cell::Null => Value::Null,
                    Cell::Boolean(b) => json!(b),
                    Cell::Integer(n) => json!(n),
                    Cell::Number(n) => json!(n),
                    Cell::Text(s) => json!(s),
                    Cell::Json(t) => serde_json::from_str(t).unwrap(),
                };
                assert!(row.insert(k.to_string(), v).is_none());
            }
        });
        Value::Object(row)
    }

    /// The cell of column `name`, as the host would be given it.
    fn cell_text(cells: &Cells, name: &str) -> Option<String> {
        cells.with(|cells| cells.iter().find(|(k, _)| *k == name).map(|(_, c)| format!("{c:?}")))
    }

    fn same_as_json<T: Serialize>(row: &T) {
        let cells = of(row).expect("a row");
        // What the host made of the JSON text `upsert` sent before (f32 differs in to_value).
        let text: Value = serde_json::from_str(&serde_json::to_string(row).unwrap()).unwrap();
        assert_eq!(as_json(&cells), text);
    }

    #[derive(Serialize)]
    enum Mode {
        Fast,
    }

    #[derive(Serialize)]
    struct Inner<'a> {
        team: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
    }

    #[derive(Serialize)]
    struct Row<'a> {
        id: String,
        #[serde(rename = "type")]
        kind: &'a str,
        n: i32,
        big: u64,
        huge: u64,
        x: f64,
        nan: f64,
        f: f32,
        ok: bool,
        none: Option<String>,
        some: Option<i64>,
        list: Vec<u8>,
        map: BTreeMap<String, Value>,
        raw: Box<RawValue>,
        mode: Mode,
        unit: (),
        c: char,
        #[serde(flatten)]
        inner: Inner<'a>,
    }

    #[test]
    fn a_row_gives_the_cells_its_json_would() {
        let row = Row {
            id: "e1".into(),
            kind: "say \"hi\"\n\u{1}",
            n: -7,
            big: 1 << 40,
            huge: u64::MAX,
            x: 2.5,
            nan: f64::NAN,
            f: 1.1,
            ok: true,
            none: None,
            some: Some(3),
            list: vec![1, 2],
            map: BTreeMap::from([("a".to_string(), json!({"b": [null]}))]),
            raw: RawValue::from_string(r#"{"raw": [1, "two"]}"#.into()).unwrap(),
            mode: Mode::Fast,
            unit: (),
            c: 'é',
            inner: Inner { team: "acme", skipped: None },
        };
        same_as_json(&row);
        let cells = of(&row).unwrap();
        let expected = format!("{:?}", Cell::Text("say \"hi\"\n\u{1}"));
        assert_eq!(cell_text(&cells, "type"), Some(expected));
        let expected = format!("{:?}", Cell::Json("18446744073709551615"));
        assert_eq!(cell_text(&cells, "huge"), Some(expected));
        same_as_json(&json!({"id": "k", "n": 1, "doc": {"a": 1}, "gone": null}));
        same_as_json(&BTreeMap::from([("k", 1)]));
    }

    #[test]
    fn what_is_no_object_goes_as_json_text() {
        assert!(of(&json!("text")).is_none());
        assert!(of(&json!([{"id": 1}])).is_none());
        assert!(of(&RawValue::from_string(r#"{"id": "k"}"#.into()).unwrap()).is_none());
        assert!(of(&BTreeMap::from([(1, "int key")])).is_none());
        assert!(of(&()).is_none());
    }
}
