//! A row as typed cells for `tables.upsert-row`: any `Serialize` struct or map becomes
//! `(column, cell)` pairs with no JSON text in between, so a long text column (an event's
//! `raw_event`) is copied to the host as it is instead of being escaped here and parsed there.
//!
//! The cells say what `serde_json` would have written: numbers, booleans, strings and `null` as
//! such, anything nested (arrays, objects, a `RawValue`) as its JSON text. A value that is no
//! struct or map with string keys gives `None`, and the caller sends JSON text as before, so
//! the host's answer (refusal included) is the same either way.

use serde::ser::{self, Impossible, Serialize, SerializeMap, SerializeStruct, Serializer};

use crate::bindings::flowhost::flow::tables::Cell;

/// The cells of `row`, or `None` when `row` does not serialize as a JSON object.
pub(crate) fn of<T: Serialize + ?Sized>(row: &T) -> Option<Vec<(String, Cell)>> {
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
fn cell<T: Serialize + ?Sized>(value: &T) -> Result<Cell, NoCell> {
    match value.serialize(CellSer) {
        Ok(c) => Ok(c),
        Err(NoCell) => serde_json::to_string(value).map(Cell::Json).map_err(|_| NoCell),
    }
}

/// Serializes the row itself: only a struct or a map is one.
struct RowSer;

/// The pairs collected so far, and the key waiting for its value (maps).
struct Pairs {
    pairs: Vec<(String, Cell)>,
    key: Option<String>,
}

impl Pairs {
    fn with_capacity(n: usize) -> Self {
        Pairs { pairs: Vec::with_capacity(n), key: None }
    }
}

impl SerializeStruct for Pairs {
    type Ok = Vec<(String, Cell)>;
    type Error = NoCell;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NoCell> {
        self.pairs.push((key.to_string(), cell(value)?));
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, NoCell> {
        Ok(self.pairs)
    }
}

impl SerializeMap for Pairs {
    type Ok = Vec<(String, Cell)>;
    type Error = NoCell;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), NoCell> {
        match key.serialize(CellSer)? {
            Cell::Text(k) => {
                self.key = Some(k);
                Ok(())
            }
            _ => Err(NoCell),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoCell> {
        let key = self.key.take().ok_or(NoCell)?;
        self.pairs.push((key, cell(value)?));
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, NoCell> {
        Ok(self.pairs)
    }
}

/// Every `serialize_*` a row or a cell refuses (the caller falls back to JSON text).
macro_rules! no_cell {
    ($($f:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $f(self, $(_: $arg),*) -> Result<$ok, NoCell> { Err(NoCell) })*
    };
}

impl Serializer for RowSer {
    type Ok = Vec<(String, Cell)>;
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
        $(fn $f(self, v: $t) -> Result<Cell, NoCell> { Ok(Cell::Integer(i64::from(v))) })*
    };
}

/// Serializes one column's value: a scalar becomes its cell; anything nested is refused, and
/// [`cell`] writes it as JSON text instead.
struct CellSer;

impl Serializer for CellSer {
    type Ok = Cell;
    type Error = NoCell;
    type SerializeSeq = Impossible<Cell, NoCell>;
    type SerializeTuple = Impossible<Cell, NoCell>;
    type SerializeTupleStruct = Impossible<Cell, NoCell>;
    type SerializeTupleVariant = Impossible<Cell, NoCell>;
    type SerializeMap = Impossible<Cell, NoCell>;
    type SerializeStruct = Impossible<Cell, NoCell>;
    type SerializeStructVariant = Impossible<Cell, NoCell>;

    fn serialize_bool(self, v: bool) -> Result<Cell, NoCell> {
        Ok(Cell::Boolean(v))
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
    fn serialize_u64(self, v: u64) -> Result<Cell, NoCell> {
        // Past i64, the JSON number's text (the host refuses it for an integer column, as it
        // would refuse the same JSON).
        Ok(i64::try_from(v).map(Cell::Integer).unwrap_or_else(|_| Cell::Json(v.to_string())))
    }
    fn serialize_f64(self, v: f64) -> Result<Cell, NoCell> {
        // serde_json writes a NaN or an infinity as `null`.
        Ok(if v.is_finite() { Cell::Number(v) } else { Cell::Null })
    }
    fn serialize_char(self, v: char) -> Result<Cell, NoCell> {
        Ok(Cell::Text(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Cell, NoCell> {
        Ok(Cell::Text(v.to_string()))
    }
    fn serialize_none(self) -> Result<Cell, NoCell> {
        Ok(Cell::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Cell, NoCell> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Cell, NoCell> {
        Ok(Cell::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Cell, NoCell> {
        Ok(Cell::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Cell, NoCell> {
        Ok(Cell::Text(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Cell, NoCell> {
        value.serialize(self)
    }

    // f32 (serde_json prints it with f32's shortest digits), 128-bit integers, bytes and
    // everything nested: JSON text.
    no_cell! {
        serialize_f32(f32) -> Cell;
        serialize_i128(i128) -> Cell;
        serialize_u128(u128) -> Cell;
        serialize_bytes(&[u8]) -> Cell;
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
    ) -> Result<Cell, NoCell> {
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
    fn as_json(cells: Vec<(String, Cell)>) -> Value {
        let mut row = serde_json::Map::new();
        for (k, c) in cells {
            let v = match c {
                Cell::Null => Value::Null,
                Cell::Boolean(b) => json!(b),
                Cell::Integer(n) => json!(n),
                Cell::Number(n) => json!(n),
                Cell::Text(s) => json!(s),
                Cell::Json(t) => serde_json::from_str(&t).unwrap(),
            };
            assert!(row.insert(k, v).is_none());
        }
        Value::Object(row)
    }

    fn same_as_json<T: Serialize>(row: &T) {
        let cells = of(row).expect("a row");
        // What the host made of the JSON text `upsert` sent before (f32 differs in to_value).
        let text: Value = serde_json::from_str(&serde_json::to_string(row).unwrap()).unwrap();
        assert_eq!(as_json(cells), text);
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
        let kind = cells.iter().find(|(k, _)| k == "type").map(|(_, c)| c);
        assert!(matches!(kind, Some(Cell::Text(t)) if t == "say \"hi\"\n\u{1}"), "{kind:?}");
        assert!(
            matches!(cells.iter().find(|(k, _)| k == "huge"), Some((_, Cell::Json(t))) if t == "18446744073709551615")
        );
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
