//! The producer's IPC streams: schema once, one record batch per payload, no
//! end-of-stream marker, schema ids unique across types, a new id on a schema change.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, UInt16Array};
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
    MetricsTables { tables: entries }
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
    assert_eq!(a.arrow_payloads[0].schema_id, "0");
    assert_eq!(
        b.arrow_payloads[0].schema_id, "2",
        "reset: the next id of the one counter"
    );
    assert_eq!(
        b.arrow_payloads[1].schema_id, "1",
        "other types keep their stream"
    );
    // The reset payload starts with its own schema.
    let reset = read_all(&b.arrow_payloads[0].record);
    assert_eq!(reset[0].num_columns(), 2);
}

#[test]
fn empty_tables_are_left_out() {
    let mut producer = Producer::new(IpcCompression::Zstd);
    let bar = producer
        .produce(&tables(vec![(
            PayloadType::UnivariateMetrics,
            batch(&["id"], 0),
        )]))
        .unwrap();
    assert!(bar.arrow_payloads.is_empty());
}
