//! The producer's IPC streams: schema once, one record batch per payload, no
//! end-of-stream marker, schema ids unique across types, a new id on a schema change.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Int64Array, RecordBatch, UInt16Array};
use arrow_buffer::ArrowNativeType;
use arrow_ipc::reader::StreamReader;
use arrow_schema::{DataType, Field, Schema};
use its_exporter_otap::{IpcCompression, MetricsTables, PayloadType, Producer};

fn batch(columns: &[&str], rows: u16) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| {
            Field::new(
                *c,
                if *c == "parent_id" {
                    DataType::UInt16
                } else {
                    DataType::Int64
                },
                false,
            )
        })
        .collect();
    let arrays = columns
        .iter()
        .map(|c| -> arrow_array::ArrayRef {
            if *c == "parent_id" {
                Arc::new(UInt16Array::from((0..rows).collect::<Vec<_>>()))
            } else {
                Arc::new(Int64Array::from((0..i64::from(rows)).collect::<Vec<_>>()))
            }
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn tables(entries: Vec<(PayloadType, RecordBatch)>) -> MetricsTables {
    MetricsTables {
        tables: entries,
        totals_of: Vec::new(),
    }
}

/// Reads every record batch of an IPC stream made of the concatenated payloads.
fn read_all(bytes: &[u8]) -> Vec<RecordBatch> {
    StreamReader::try_new(Cursor::new(bytes.to_vec()), None)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn payloads_continue_one_stream_and_never_end_it() {
    let mut producer = Producer::new(IpcCompression::Zstd);
    let first = producer
        .produce(&tables(vec![
            (PayloadType::UnivariateMetrics, batch(&["id"], 3)),
            (PayloadType::NumberDataPoints, batch(&["parent_id"], 2)),
        ]))
        .unwrap();
    let second = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            batch(&["id"], 5),
        )]))
        .unwrap();
    assert_eq!((first.batch_id, second.batch_id), (0, 1));
    let ids: Vec<&str> = first
        .arrow_payloads
        .iter()
        .map(|p| p.schema_id.as_str())
        .collect();
    assert_eq!(ids, ["0", "1"], "one counter across payload types");
    assert_eq!(
        second.arrow_payloads[0].schema_id, "0",
        "same schema, same stream"
    );
    for p in first.arrow_payloads.iter().chain(&second.arrow_payloads) {
        assert!(
            !p.record.ends_with(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
            "no EOS marker"
        );
    }
    // The second payload has no schema: it only reads as the continuation of the first.
    let mut stream = first.arrow_payloads[0].record.clone();
    stream.extend_from_slice(&second.arrow_payloads[0].record);
    let batches = read_all(&stream);
    assert_eq!(
        batches
            .iter()
            .map(RecordBatch::num_rows)
            .collect::<Vec<_>>(),
        [3, 5]
    );
    assert!(
        StreamReader::try_new(Cursor::new(second.arrow_payloads[0].record.clone()), None).is_err()
    );
}

#[test]
fn a_schema_change_resets_that_type_with_a_fresh_id() {
    let mut producer = Producer::new(IpcCompression::None);
    let a = producer
        .produce(&tables(vec![
            (PayloadType::ScopeAttrs, batch(&["parent_id"], 1)),
            (PayloadType::UnivariateMetrics, batch(&["id"], 1)),
        ]))
        .unwrap();
    let b = producer
        .produce(&tables(vec![
            (PayloadType::ScopeAttrs, batch(&["parent_id", "int"], 2)),
            (PayloadType::UnivariateMetrics, batch(&["id"], 1)),
        ]))
        .unwrap();
    // The root goes first (see below), so it took schema id 0.
    assert_eq!(a.arrow_payloads[1].schema_id, "1");
    assert_eq!(
        b.arrow_payloads[1].schema_id, "2",
        "reset: the next id of the one counter"
    );
    assert_eq!(
        b.arrow_payloads[0].schema_id, "0",
        "other types keep their stream"
    );
    // The reset payload starts with its own schema.
    let reset = read_all(&b.arrow_payloads[1].record);
    assert_eq!(reset[0].num_columns(), 2);
}

#[test]
fn the_root_table_goes_first_whatever_the_order_of_the_tables() {
    // The Go receiver reads the first payload's type as the batch's signal, and
    // breaks the stream when it is not UNIVARIATE_METRICS.
    let mut producer = Producer::new(IpcCompression::None);
    let bar = producer
        .produce(&tables(vec![
            (PayloadType::ResourceAttrs, batch(&["parent_id"], 1)),
            (PayloadType::NumberDataPoints, batch(&["parent_id"], 2)),
            (PayloadType::UnivariateMetrics, batch(&["id"], 2)),
            (PayloadType::ScopeAttrs, batch(&["parent_id"], 1)),
        ]))
        .unwrap();
    let types: Vec<i32> = bar.arrow_payloads.iter().map(|p| p.r#type).collect();
    assert_eq!(types, [10, 1, 11, 2], "the root first, the others in order");
}

#[test]
fn empty_tables_are_left_out_and_a_batch_without_metric_rows_is_refused() {
    let mut producer = Producer::new(IpcCompression::Zstd);
    let bar = producer
        .produce(&tables(vec![
            (PayloadType::UnivariateMetrics, batch(&["id"], 1)),
            (PayloadType::NumberDataPoints, batch(&["parent_id"], 0)),
        ]))
        .unwrap();
    assert_eq!(bar.arrow_payloads.len(), 1);
    // Receivers refuse a batch with no root rows: the Go one as a permanent error
    // when it is empty, by breaking the stream when attributes come first.
    for refused in [
        vec![(PayloadType::UnivariateMetrics, batch(&["id"], 0))],
        vec![(PayloadType::ResourceAttrs, batch(&["parent_id"], 1))],
        vec![],
    ] {
        let e = producer.produce(&tables(refused)).unwrap_err();
        assert!(e.to_string().contains("without metric rows"), "{e}");
    }
    // Nothing was produced: the batch ids go on from where they were.
    let next = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            batch(&["id"], 1),
        )]))
        .unwrap();
    assert_eq!(next.batch_id, 1);
}

/// A root table whose `name` column is the encoder's per-batch dictionary.
fn named(names: &[&str]) -> RecordBatch {
    let keys = arrow_array::UInt16Array::from((0..names.len() as u16).collect::<Vec<_>>());
    let values = Arc::new(arrow_array::StringArray::from(names.to_vec()));
    let dict =
        arrow_array::DictionaryArray::<arrow_array::types::UInt16Type>::try_new(keys, values)
            .unwrap();
    let schema = Schema::new(vec![
        Field::new("id", DataType::UInt16, false),
        Field::new(
            "name",
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
            false,
        ),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(UInt16Array::from(
                (0..names.len() as u16).collect::<Vec<_>>(),
            )),
            Arc::new(dict),
        ],
    )
    .unwrap()
}

fn names_of(batch: &RecordBatch) -> (DataType, Vec<String>) {
    let column = batch.column_by_name("name").unwrap();
    let decoded = dictionary_values_by_key(column);
    (column.data_type().clone(), decoded)
}

/// Dictionary values by key, for UInt8 or UInt16 keys.
fn dictionary_values_by_key(column: &arrow_array::ArrayRef) -> Vec<String> {
    fn values<K: arrow_array::types::ArrowDictionaryKeyType>(
        d: &arrow_array::DictionaryArray<K>,
    ) -> Vec<String> {
        let values = d.values().as_string::<i32>();
        d.keys()
            .values()
            .iter()
            .map(|k| values.value(k.as_usize()).to_owned())
            .collect()
    }
    match column.as_dictionary_opt::<arrow_array::types::UInt8Type>() {
        Some(d) => values(d),
        None => values(column.as_dictionary::<arrow_array::types::UInt16Type>()),
    }
}

/// The kinds of the encapsulated IPC messages in `record`, in order.
fn ipc_messages(record: &[u8]) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < record.len() {
        assert_eq!(&record[at..at + 4], &[0xFF; 4], "continuation marker");
        let len = i32::from_le_bytes(record[at + 4..at + 8].try_into().unwrap()) as usize;
        let message = arrow_ipc::root_as_message(&record[at + 8..at + 8 + len]).unwrap();
        out.push(match message.header_type() {
            arrow_ipc::MessageHeader::Schema => "schema",
            arrow_ipc::MessageHeader::RecordBatch => "record batch",
            arrow_ipc::MessageHeader::DictionaryBatch => {
                if message.header_as_dictionary_batch().unwrap().isDelta() {
                    "delta dictionary"
                } else {
                    "dictionary"
                }
            }
            _ => "other",
        });
        at += 8 + len + message.bodyLength() as usize;
    }
    out
}

#[test]
fn dictionaries_grow_by_deltas_and_stay_unique() {
    let mut producer = Producer::new(IpcCompression::None);
    let rounds: [&[&str]; 3] = [&["a", "b", "a"], &["b", "a"], &["c", "a", "c"]];
    let mut record = Vec::new();
    let mut sizes = Vec::new();
    let mut messages = Vec::new();
    for names in rounds {
        let bar = producer
            .produce(&tables(vec![(
                PayloadType::UnivariateMetrics,
                named(names),
            )]))
            .unwrap();
        assert_eq!(bar.arrow_payloads[0].schema_id, "0", "one IPC stream");
        sizes.push(bar.arrow_payloads[0].record.len());
        messages.push(ipc_messages(&bar.arrow_payloads[0].record));
        record.extend_from_slice(&bar.arrow_payloads[0].record);
    }
    // Schema and the whole dictionary first; nothing new, no dictionary; then only the
    // new value, as a delta.
    assert_eq!(
        messages,
        [
            vec!["schema", "dictionary", "record batch"],
            vec!["record batch"],
            vec!["delta dictionary", "record batch"],
        ]
    );
    let read = read_all(&record);
    for (batch, names) in read.iter().zip(rounds) {
        let (data_type, decoded) = names_of(batch);
        assert_eq!(
            data_type,
            DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8))
        );
        assert_eq!(decoded, names);
    }
    // Round 2 brings no new value: no dictionary message, so it is the smallest.
    assert!(sizes[1] < sizes[2], "{sizes:?}");
    // The stream's dictionary holds each value once: a, b, then the delta c.
    let last = read[2].column_by_name("name").unwrap();
    let dict = last.as_dictionary::<arrow_array::types::UInt8Type>();
    let values: Vec<&str> = dict.values().as_string::<i32>().iter().flatten().collect();
    assert_eq!(values, ["a", "b", "c"]);
}

#[test]
fn an_overflowing_dictionary_widens_its_keys_with_a_schema_reset() {
    let mut producer = Producer::new(its_exporter_otap::ProducerOptions {
        u8_dictionary_limit: 3,
        ..its_exporter_otap::ProducerOptions::default()
    });
    let first = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            named(&["a", "b"]),
        )]))
        .unwrap();
    let second = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            named(&["c", "d", "a"]),
        )]))
        .unwrap();
    let third = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            named(&["e"]),
        )]))
        .unwrap();
    assert_eq!(first.arrow_payloads[0].schema_id, "0");
    assert_eq!(second.arrow_payloads[0].schema_id, "1", "a reset");
    assert_eq!(third.arrow_payloads[0].schema_id, "1", "the width stays");
    let before = read_all(&first.arrow_payloads[0].record);
    assert_eq!(names_of(&before[0]).1, ["a", "b"]);
    // The new stream starts with its own schema and a fresh dictionary.
    let mut after_bytes = second.arrow_payloads[0].record.clone();
    after_bytes.extend_from_slice(&third.arrow_payloads[0].record);
    let after = read_all(&after_bytes);
    let (data_type, names) = names_of(&after[0]);
    assert_eq!(
        data_type,
        DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
    );
    assert_eq!(names, ["c", "d", "a"]);
    assert_eq!(names_of(&after[1]).1, ["e"]);
}

/// A root table with a required `id`, and optionally an optional `name` dictionary
/// column and an optional `value` column.
fn optional(rows: u16, name: bool, value: bool) -> RecordBatch {
    let mut fields = vec![Field::new("id", DataType::UInt16, false)];
    let mut columns: Vec<arrow_array::ArrayRef> =
        vec![Arc::new(UInt16Array::from((0..rows).collect::<Vec<_>>()))];
    if name {
        let keys = UInt16Array::from(vec![0; usize::from(rows)]);
        let values = Arc::new(arrow_array::StringArray::from(vec!["n"]));
        fields.push(Field::new(
            "name",
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
            true,
        ));
        columns.push(Arc::new(
            arrow_array::DictionaryArray::<arrow_array::types::UInt16Type>::try_new(keys, values)
                .unwrap(),
        ));
    }
    if value {
        fields.push(Field::new("value", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(vec![7; usize::from(rows)])));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

#[test]
fn optional_columns_that_come_and_go_keep_the_stream() {
    let mut producer = Producer::new(IpcCompression::Zstd);
    let rounds = [
        (true, true),
        (false, true),
        (true, false),
        (false, false),
        (true, true),
    ];
    let mut record = Vec::new();
    let mut messages = Vec::new();
    for (name, value) in rounds {
        let bar = producer
            .produce(&tables(vec![(
                PayloadType::UnivariateMetrics,
                optional(3, name, value),
            )]))
            .unwrap();
        assert_eq!(bar.arrow_payloads[0].schema_id, "0", "no schema reset");
        messages.push(ipc_messages(&bar.arrow_payloads[0].record));
        record.extend_from_slice(&bar.arrow_payloads[0].record);
    }
    // One schema and one dictionary, first; the missing columns cost no message.
    assert_eq!(messages[0], ["schema", "dictionary", "record batch"]);
    assert!(
        messages[1..].iter().all(|m| m == &["record batch"]),
        "{messages:?}"
    );
    // Missing columns read back as all null; present ones as sent.
    for (batch, (name, value)) in read_all(&record).iter().zip(rounds) {
        assert_eq!(batch.num_columns(), 3);
        let names = batch.column_by_name("name").unwrap();
        let values = batch.column_by_name("value").unwrap();
        assert_eq!(names.null_count(), if name { 0 } else { 3 });
        assert_eq!(values.null_count(), if value { 0 } else { 3 });
    }

    // A new column, or a missing required one, is a new schema.
    let bar = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            batch(&["id", "extra"], 2),
        )]))
        .unwrap();
    assert_eq!(bar.arrow_payloads[0].schema_id, "1");
    let bar = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            optional(2, true, false),
        )]))
        .unwrap();
    assert_eq!(bar.arrow_payloads[0].schema_id, "2", "`extra` is required");
}

/// A root table of 3 rows with a required `id`, an optional `name` dictionary column
/// holding `names` (cycled) if given, and an optional `value` column if `value`.
fn root(names: Option<&[&str]>, value: bool) -> RecordBatch {
    let rows = names.map_or(3, <[&str]>::len).max(3);
    let mut fields = vec![Field::new("id", DataType::UInt16, false)];
    let mut columns: Vec<arrow_array::ArrayRef> = vec![Arc::new(UInt16Array::from(
        (0..rows as u16).collect::<Vec<_>>(),
    ))];
    if let Some(names) = names {
        let keys = UInt16Array::from(
            (0..rows)
                .map(|r| (r % names.len()) as u16)
                .collect::<Vec<_>>(),
        );
        fields.push(Field::new(
            "name",
            DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
            true,
        ));
        columns.push(Arc::new(
            arrow_array::DictionaryArray::<arrow_array::types::UInt16Type>::try_new(
                keys,
                Arc::new(arrow_array::StringArray::from(names.to_vec())),
            )
            .unwrap(),
        ));
    }
    if value {
        fields.push(Field::new("value", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(vec![7; rows])));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// The schema id of each round's root payload, and the record batches read back from
/// each IPC stream, by schema id.
fn rounds(producer: &mut Producer, batches: Vec<RecordBatch>) -> (Vec<String>, Vec<RecordBatch>) {
    let mut ids = Vec::new();
    let mut streams: Vec<(String, Vec<u8>)> = Vec::new();
    for batch in batches {
        let bar = producer
            .produce(&tables(vec![(PayloadType::UnivariateMetrics, batch)]))
            .unwrap();
        let payload = &bar.arrow_payloads[0];
        ids.push(payload.schema_id.clone());
        match streams.iter_mut().find(|(id, _)| *id == payload.schema_id) {
            Some((_, bytes)) => bytes.extend_from_slice(&payload.record),
            None => streams.push((payload.schema_id.clone(), payload.record.clone())),
        }
    }
    let read = streams
        .iter()
        .flat_map(|(_, bytes)| read_all(bytes))
        .collect();
    (ids, read)
}

#[test]
fn a_new_schema_keeps_the_optional_columns_of_the_one_before() {
    // `value`, then `name` (new: a reset), then each alone and both: the new schema
    // has both, so the columns that come and go cost one reset in all, not one each
    // time they swap.
    let mut producer = Producer::new(IpcCompression::Zstd);
    let n: &[&str] = &["n"];
    let (ids, read) = rounds(
        &mut producer,
        vec![
            root(None, true),
            root(Some(n), false),
            root(None, true),
            root(Some(n), false),
            root(Some(n), true),
            root(None, false),
        ],
    );
    assert_eq!(ids, ["0", "1", "1", "1", "1", "1"]);
    let expected = [
        (false, true),
        (true, false),
        (false, true),
        (true, false),
        (true, true),
        (false, false),
    ];
    for (batch, (name, value)) in read[1..].iter().zip(&expected[1..]) {
        assert_eq!(batch.num_columns(), 3);
        let names = batch.column_by_name("name").unwrap();
        assert_eq!(names.null_count(), if *name { 0 } else { 3 });
        let values = batch.column_by_name("value").unwrap();
        assert_eq!(values.null_count(), if *value { 0 } else { 3 });
    }
    assert_eq!(column_values(&read[4], "name"), [Some("n"); 3]);
}

#[test]
fn a_new_column_resets_with_the_dictionary_values_of_its_batch_only() {
    // Four names, then `value` appears (a reset) in a batch naming one: the new stream
    // sends that one name, not every name the stream had sent, so a reset costs what
    // its batch holds; the next batch adds its name by a delta.
    let mut producer = Producer::new(IpcCompression::None);
    let (ids, read) = rounds(
        &mut producer,
        vec![
            root(Some(&["a", "b", "c", "d"]), false),
            root(Some(&["d"]), true),
            root(Some(&["a"]), true),
        ],
    );
    assert_eq!(ids, ["0", "1", "1"]);
    let sent = |batch: &RecordBatch| -> Vec<String> {
        let names = batch.column_by_name("name").unwrap().as_any_dictionary();
        let values = names.values().as_string::<i32>();
        values.iter().map(|v| v.unwrap().to_owned()).collect()
    };
    assert_eq!(sent(&read[0]), ["a", "b", "c", "d"]);
    assert_eq!(sent(&read[1]), ["d"]);
    assert_eq!(names_of(&read[1]).1, ["d"; 3]);
    assert_eq!(sent(&read[2]), ["d", "a"]);
    assert_eq!(names_of(&read[2]).1, ["a"; 3]);
}

#[test]
fn a_reset_for_wider_keys_keeps_the_optional_columns_too() {
    let mut producer = Producer::new(its_exporter_otap::ProducerOptions {
        u8_dictionary_limit: 2,
        ..its_exporter_otap::ProducerOptions::default()
    });
    // `value` and two names; then three names without `value` widen the keys (a
    // reset); `value` alone then continues the wider stream.
    let (ids, read) = rounds(
        &mut producer,
        vec![
            root(Some(&["a", "b"]), true),
            root(Some(&["a", "b", "c"]), false),
            root(None, true),
            root(Some(&["d"]), true),
        ],
    );
    assert_eq!(ids, ["0", "1", "1", "1"]);
    let wide = DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8));
    for batch in &read[1..] {
        assert_eq!(batch.column_by_name("name").unwrap().data_type(), &wide);
        assert!(batch.column_by_name("value").is_some());
    }
    assert_eq!(read[1].column_by_name("value").unwrap().null_count(), 3);
    assert_eq!(read[2].column_by_name("name").unwrap().null_count(), 3);
    assert_eq!(read[3].column_by_name("value").unwrap().null_count(), 0);
}

#[test]
fn a_reset_for_wider_keys_keeps_dictionary_columns_the_batch_lacks() {
    // `name` and `unit`; then `name` outgrows UInt8 keys in a batch without `unit`:
    // the new stream starts with fresh dictionaries and keeps `unit`, all null over an
    // empty dictionary, whose first values then arrive as a delta, with no reset.
    let mut producer = Producer::new(its_exporter_otap::ProducerOptions {
        u8_dictionary_limit: 2,
        ..its_exporter_otap::ProducerOptions::default()
    });
    let (ids, read) = rounds(
        &mut producer,
        vec![
            with_unit(&root(Some(&["a", "b"]), false), "u"),
            root(Some(&["a", "b", "c"]), false),
            with_unit(&root(Some(&["d"]), false), "v"),
        ],
    );
    assert_eq!(ids, ["0", "1", "1"]);
    assert_eq!(column_values(&read[1], "unit"), [None, None, None]);
    assert_eq!(column_values(&read[2], "unit"), [Some("v"); 3]);
}

/// `batch` with a `unit` dictionary column holding `unit` on every row.
fn with_unit(batch: &RecordBatch, unit: &str) -> RecordBatch {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(
        "unit",
        DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
        true,
    ));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(
        arrow_array::DictionaryArray::<arrow_array::types::UInt16Type>::try_new(
            UInt16Array::from(vec![0; batch.num_rows()]),
            Arc::new(arrow_array::StringArray::from(vec![unit])),
        )
        .unwrap(),
    ));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// A dictionary column with UInt8 keys, as values.
fn column_values<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
    let column = batch.column_by_name(name).unwrap();
    let dict = column.as_dictionary::<arrow_array::types::UInt8Type>();
    let values = dict.values().as_string::<i32>();
    dict.keys()
        .iter()
        .map(|k| k.map(|k| values.value(k.as_usize())))
        .collect()
}

#[test]
fn buffers_are_padded_to_eight_bytes_as_the_go_producer_pads_them() {
    // One row of three Int64 columns: three 8-byte value buffers. With Arrow's
    // 64-byte default each would take 64 bytes of the body; padded to 8, the body is
    // just the values. Padding is not compressed: with zstd IPC bodies every buffer's
    // padding goes on the wire as is.
    let mut producer = Producer::new(IpcCompression::None);
    let bar = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            batch(&["a", "b", "c"], 1),
        )]))
        .unwrap();
    let record = &bar.arrow_payloads[0].record;
    let mut at = 0;
    let mut bodies = Vec::new();
    while at < record.len() {
        let len = i32::from_le_bytes(record[at + 4..at + 8].try_into().unwrap()) as usize;
        assert_eq!((at + 8 + len) % 8, 0, "metadata padded to 8 bytes");
        let message = arrow_ipc::root_as_message(&record[at + 8..at + 8 + len]).unwrap();
        bodies.push(message.bodyLength());
        at += 8 + len + message.bodyLength() as usize;
    }
    assert_eq!(
        bodies,
        [0, 24],
        "the schema, then the record batch's three values"
    );
}

#[test]
fn a_failed_batch_leaves_no_stream_the_receiver_has_not_seen() {
    // Batch 1 goes out. Batch 2 resets the root's schema (a new column), then fails on
    // a column the IPC writer refuses (a dictionary of dictionaries): it is never sent,
    // so the root's new schema message never arrives. Batch 3, like batch 2 without
    // the bad table, must not continue that unseen stream.
    let mut producer = Producer::new(IpcCompression::Zstd);
    let first = producer
        .produce(&tables(vec![
            (PayloadType::UnivariateMetrics, batch(&["id"], 2)),
            (PayloadType::NumberDataPoints, batch(&["parent_id"], 2)),
        ]))
        .unwrap();
    let inner = arrow_array::DictionaryArray::<arrow_array::types::UInt16Type>::try_new(
        UInt16Array::from(vec![0, 0]),
        Arc::new(arrow_array::StringArray::from(vec!["x"])),
    )
    .unwrap();
    let nested = arrow_array::DictionaryArray::<arrow_array::types::UInt16Type>::try_new(
        UInt16Array::from(vec![0, 1]),
        Arc::new(inner),
    )
    .unwrap();
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "parent_id",
            arrow_array::Array::data_type(&nested).clone(),
            false,
        )])),
        vec![Arc::new(nested)],
    )
    .unwrap();
    assert!(
        producer
            .produce(&tables(vec![
                (PayloadType::UnivariateMetrics, batch(&["id", "extra"], 2)),
                (PayloadType::NumberDataPoints, bad),
            ]))
            .is_err()
    );
    let third = producer
        .produce(&tables(vec![
            (PayloadType::UnivariateMetrics, batch(&["id", "extra"], 2)),
            (PayloadType::NumberDataPoints, batch(&["parent_id"], 2)),
        ]))
        .unwrap();
    assert_eq!(
        (first.batch_id, third.batch_id),
        (0, 1),
        "batch ids only for sent batches"
    );
    let used: Vec<&str> = first
        .arrow_payloads
        .iter()
        .map(|p| p.schema_id.as_str())
        .collect();
    for p in &third.arrow_payloads {
        assert!(
            !used.contains(&p.schema_id.as_str()),
            "schema id {} again",
            p.schema_id
        );
        // Each payload of batch 3 opens its own IPC stream: it reads on its own.
        assert_eq!(ipc_messages(&p.record)[0], "schema");
        assert_eq!(read_all(&p.record).len(), 1);
    }
}
