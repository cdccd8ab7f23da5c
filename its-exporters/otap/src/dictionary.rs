//! Dictionaries per IPC stream.
//!
//! The encoder gives each string column of a batch its own small dictionary
//! (`Dictionary<UInt16, Utf8>`, values in first-seen order, possibly repeated). The
//! producer folds those into one dictionary per column and IPC stream that only grows:
//! values are unique (the Rust consumer compares keys, the Go one values), a batch that
//! brings no new value reuses the very same values array (the IPC writer then sends no
//! dictionary message), and new values go out as a delta dictionary batch.
//!
//! Keys start as narrow as `../shared/OTAP.md` §3 allows for the column (UInt8, or
//! UInt16 for the attribute value columns) and widen when the dictionary outgrows them:
//! UInt8 -> UInt16 -> the plain type. A wider key changes the schema, so the payload
//! type starts a new IPC stream (a schema reset) with a fresh dictionary; the width
//! stays for the rest of the gRPC stream.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt8Type, UInt16Type};
use arrow_array::{
    Array, ArrayRef, DictionaryArray, RecordBatch, StringArray, StructArray, UInt8Array,
    UInt16Array,
};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema};

use crate::encode::PayloadType;

/// The key type of a dictionary column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum KeyWidth {
    U8,
    U16,
    Plain,
}

impl KeyWidth {
    /// The narrowest width OTAP allows for `column` of `kind` (`path` is the column
    /// name, or `struct.child`).
    pub(crate) fn narrowest(kind: PayloadType, path: &str) -> KeyWidth {
        let attrs = matches!(
            kind,
            PayloadType::ResourceAttrs
                | PayloadType::ScopeAttrs
                | PayloadType::NumberDpAttrs
                | PayloadType::HistogramDpAttrs
                | PayloadType::ExpHistogramDpAttrs
        );
        if attrs && matches!(path, "str" | "int" | "bytes" | "ser") {
            KeyWidth::U16
        } else {
            KeyWidth::U8
        }
    }

    fn wider(self) -> KeyWidth {
        match self {
            KeyWidth::U8 => KeyWidth::U16,
            KeyWidth::U16 | KeyWidth::Plain => KeyWidth::Plain,
        }
    }

    /// Values a dictionary of this width may hold (`u8_limit` for UInt8 keys).
    fn capacity(self, u8_limit: usize) -> usize {
        match self {
            KeyWidth::U8 => u8_limit.min(256),
            KeyWidth::U16 => 65_536,
            KeyWidth::Plain => usize::MAX,
        }
    }
}

/// One column's dictionary in one IPC stream.
#[derive(Debug, Default)]
pub(crate) struct ColumnDictionary {
    index: HashMap<String, u16>,
    values: Vec<String>,
    /// The values as an array, rebuilt only when values were added.
    array: Option<ArrayRef>,
}

impl ColumnDictionary {
    /// Stream keys for the batch's dictionary values; `None` when they do not fit in
    /// `capacity` (the dictionary is then left as it was).
    fn keys_for(&mut self, values: &StringArray, capacity: usize) -> Option<Vec<u16>> {
        let mut keys = Vec::with_capacity(values.len());
        let before = self.values.len();
        for value in values {
            let value = value.unwrap_or("");
            let key = if let Some(&key) = self.index.get(value) {
                key
            } else {
                if self.values.len() >= capacity {
                    // Roll back what this batch added.
                    for v in self.values.drain(before..) {
                        self.index.remove(&v);
                    }
                    return None;
                }
                let key = self.values.len() as u16;
                self.index.insert(value.to_owned(), key);
                self.values.push(value.to_owned());
                key
            };
            keys.push(key);
        }
        if self.values.len() != before {
            self.array = None;
        }
        Some(keys)
    }

    fn values_array(&mut self) -> ArrayRef {
        Arc::clone(
            self.array
                .get_or_insert_with(|| Arc::new(StringArray::from_iter_values(self.values.iter()))),
        )
    }
}

/// The dictionaries of one payload type's IPC stream, and the key widths chosen for
/// the gRPC stream.
#[derive(Debug, Default)]
pub(crate) struct Dictionaries {
    columns: HashMap<String, ColumnDictionary>,
}

/// Key widths per column path, for the whole gRPC stream.
pub(crate) type Widths = HashMap<(PayloadType, String), KeyWidth>;

impl Dictionaries {
    /// `batch` with every `Dictionary<UInt16, Utf8>` column (top level, or a child of a
    /// top-level struct) rewritten against this stream's dictionaries. Returns `Ok(None)`
    /// when a column outgrew its key width: the width is raised in `widths` and the
    /// caller must start a new IPC stream (fresh dictionaries) and call again.
    pub(crate) fn apply(
        &mut self,
        kind: PayloadType,
        batch: &RecordBatch,
        widths: &mut Widths,
        u8_limit: usize,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let schema = batch.schema();
        let mut fields = Vec::with_capacity(schema.fields().len());
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if let DataType::Struct(children) = field.data_type() {
                let array = column.as_struct();
                let mut child_fields = Vec::with_capacity(children.len());
                let mut child_columns = Vec::with_capacity(children.len());
                for (child, child_column) in children.iter().zip(array.columns()) {
                    if !matches!(child.data_type(), DataType::Dictionary(..)) {
                        child_fields.push(child.as_ref().clone());
                        child_columns.push(Arc::clone(child_column));
                        continue;
                    }
                    let path = format!("{}.{}", field.name(), child.name());
                    let Some((f, c)) =
                        self.column(kind, &path, child, child_column, widths, u8_limit)?
                    else {
                        return Ok(None);
                    };
                    child_fields.push(f);
                    child_columns.push(c);
                }
                let child_fields = Fields::from(child_fields);
                let rebuilt = StructArray::try_new(
                    child_fields.clone(),
                    child_columns,
                    array.nulls().cloned(),
                )?;
                fields.push(Field::new(
                    field.name(),
                    DataType::Struct(child_fields),
                    field.is_nullable(),
                ));
                columns.push(Arc::new(rebuilt) as ArrayRef);
            } else {
                let Some((f, c)) =
                    self.column(kind, field.name(), field, column, widths, u8_limit)?
                else {
                    return Ok(None);
                };
                fields.push(f);
                columns.push(c);
            }
        }
        let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
        Ok(Some(RecordBatch::try_new(Arc::new(schema), columns)?))
    }

    /// An all-null column of `data_type` for `path`, `len` rows: for a dictionary
    /// column, null keys over this stream's values, so that no dictionary message
    /// follows. `None` for a dictionary of other than strings or keys other than
    /// UInt8 and UInt16.
    pub(crate) fn null_column(
        &mut self,
        path: &str,
        data_type: &DataType,
        len: usize,
    ) -> Option<ArrayRef> {
        let DataType::Dictionary(key, value) = data_type else {
            return Some(arrow_array::new_null_array(data_type, len));
        };
        if **value != DataType::Utf8 {
            return None;
        }
        // A column this stream has not seen yet (a new schema keeping the optional
        // columns of the one before) starts with no values.
        let values = self
            .columns
            .entry(path.to_owned())
            .or_default()
            .values_array();
        let array: ArrayRef = match **key {
            DataType::UInt8 => Arc::new(
                DictionaryArray::<UInt8Type>::try_new(UInt8Array::new_null(len), values).ok()?,
            ),
            DataType::UInt16 => Arc::new(
                DictionaryArray::<UInt16Type>::try_new(UInt16Array::new_null(len), values).ok()?,
            ),
            _ => return None,
        };
        Some(array)
    }

    fn column(
        &mut self,
        kind: PayloadType,
        path: &str,
        field: &Field,
        column: &ArrayRef,
        widths: &mut Widths,
        u8_limit: usize,
    ) -> Result<Option<(Field, ArrayRef)>, ArrowError> {
        let Some(dict) = column.as_dictionary_opt::<UInt16Type>() else {
            return Ok(Some((field.clone(), Arc::clone(column))));
        };
        let Some(values) = dict.values().as_string_opt::<i32>() else {
            return Ok(Some((field.clone(), Arc::clone(column))));
        };
        let width = *widths
            .entry((kind, path.to_owned()))
            .or_insert_with(|| KeyWidth::narrowest(kind, path));
        let (data_type, array): (DataType, ArrayRef) = if width == KeyWidth::Plain {
            let plain: StringArray = dict
                .keys()
                .iter()
                .map(|k| k.map(|k| values.value(usize::from(k))))
                .collect();
            (DataType::Utf8, Arc::new(plain))
        } else {
            let state = self.columns.entry(path.to_owned()).or_default();
            let Some(map) = state.keys_for(values, width.capacity(u8_limit)) else {
                widths.insert((kind, path.to_owned()), width.wider());
                return Ok(None);
            };
            let stream_values = state.values_array();
            let keys = dict.keys();
            // Null keys keep their (meaningless) slot value; the null buffer carries over.
            let remap = |k: &u16| map.get(usize::from(*k)).copied().unwrap_or(0);
            if width == KeyWidth::U8 {
                let keys = UInt8Array::new(
                    keys.values().iter().map(|k| remap(k) as u8).collect(),
                    keys.nulls().cloned(),
                );
                (
                    DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8)),
                    Arc::new(DictionaryArray::<UInt8Type>::try_new(keys, stream_values)?),
                )
            } else {
                let keys = UInt16Array::new(
                    keys.values().iter().map(remap).collect(),
                    keys.nulls().cloned(),
                );
                (
                    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
                    Arc::new(DictionaryArray::<UInt16Type>::try_new(keys, stream_values)?),
                )
            }
        };
        let field = Field::new(field.name(), data_type, field.is_nullable())
            .with_metadata(field.metadata().clone());
        Ok(Some((field, array)))
    }
}
