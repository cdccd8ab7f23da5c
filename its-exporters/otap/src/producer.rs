//! One producer per gRPC stream (or file): one Arrow IPC stream per payload type.
//!
//! As `../shared/OTAP.md` §0 and §2 require: the first payload of an IPC stream carries
//! the schema and exactly one record batch, later payloads exactly one record batch; no
//! end-of-stream marker is ever written; schema ids come from one counter across all
//! payload types, and a payload type gets a new one (a schema reset) only when its
//! schema changes (a new column, a required one missing, or a dictionary's keys
//! widen; an optional column the stream has and a batch lacks goes out all null, so
//! a column that comes and goes keeps the stream, and a new schema keeps the optional
//! columns of the one before, so each column costs at most one reset); dictionaries
//! are per IPC stream and grow by delta batches; IPC bodies are zstd-compressed (or
//! not, by configuration).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::writer::{DictionaryHandling, IpcWriteOptions, StreamWriter};
use arrow_ipc::{CompressionType, MetadataVersion};
use arrow_schema::{ArrowError, Fields, Schema};

use crate::dictionary::{Dictionaries, Widths};
use crate::encode::{MetricsTables, PayloadType};
use crate::proto::{ArrowPayload, BatchArrowRecords};

/// IPC body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IpcCompression {
    /// zstd, as both upstream producers (the default).
    #[default]
    Zstd,
    /// Uncompressed bodies.
    None,
}

/// How a producer writes its IPC streams.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    /// IPC body compression.
    pub compression: IpcCompression,
    /// Values a UInt8-keyed dictionary may hold before its column moves to UInt16 keys
    /// (a schema reset): 256, the most a UInt8 key addresses, unless lowered (1..=256).
    pub u8_dictionary_limit: usize,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            compression: IpcCompression::Zstd,
            u8_dictionary_limit: 256,
        }
    }
}

impl From<IpcCompression> for ProducerOptions {
    fn from(compression: IpcCompression) -> Self {
        ProducerOptions {
            compression,
            ..ProducerOptions::default()
        }
    }
}

struct Stream {
    schema_id: String,
    fields: Fields,
    writer: StreamWriter<Vec<u8>>,
    dictionaries: Dictionaries,
}

/// The state of one OTAP stream.
pub struct Producer {
    options: ProducerOptions,
    next_schema_id: u64,
    next_batch_id: i64,
    streams: HashMap<PayloadType, Stream>,
    widths: Widths,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("next_schema_id", &self.next_schema_id)
            .field("next_batch_id", &self.next_batch_id)
            .finish_non_exhaustive()
    }
}

/// Whether a batch continues a stream: same field names and types, in the same order
/// (the encoder's order is fixed, so this is the structural signature of OTAP.md
/// without building it).
fn same_shape(a: &Fields, b: &Fields) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// `batch` with the stream's `fields`: every column of `batch` (found by name) in the
/// stream's order, and the stream's other columns, if optional, all null. `None` when
/// the batch has a column the stream lacks, a different type, or lacks a required
/// column.
fn fit(
    batch: &RecordBatch,
    fields: &Fields,
    dictionaries: &mut Dictionaries,
) -> Option<RecordBatch> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(fields.len());
    let mut used = 0;
    for field in fields {
        match schema.index_of(field.name()) {
            Ok(i) => {
                if schema.field(i).data_type() != field.data_type() {
                    return None;
                }
                columns.push(Arc::clone(batch.column(i)));
                used += 1;
            }
            Err(_) if field.is_nullable() => {
                columns.push(dictionaries.null_column(
                    field.name(),
                    field.data_type(),
                    batch.num_rows(),
                )?);
            }
            Err(_) => return None,
        }
    }
    if used != schema.fields().len() {
        return None;
    }
    let schema = Schema::new_with_metadata(fields.clone(), schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).ok()
}

/// The fields of a new schema for `batch` when the stream had `previous`: the batch's,
/// then the previous schema's optional columns the batch lacks, so that a reset (a new
/// column, wider keys) does not forget the columns that come and go. `None` when
/// nothing is to be added.
fn widened(batch: &RecordBatch, previous: &Fields) -> Option<Fields> {
    let schema = batch.schema();
    let extra: Vec<_> = previous
        .iter()
        .filter(|f| f.is_nullable() && schema.index_of(f.name()).is_err())
        .cloned()
        .collect();
    if extra.is_empty() {
        return None;
    }
    Some(schema.fields().iter().cloned().chain(extra).collect())
}

impl Producer {
    /// Fresh state (a new stream starts from schema id 0 and batch id 0).
    pub fn new(options: impl Into<ProducerOptions>) -> Self {
        Producer {
            options: options.into(),
            next_schema_id: 0,
            next_batch_id: 0,
            streams: HashMap::new(),
            widths: Widths::new(),
        }
    }

    /// The next `BatchArrowRecords` for `tables`: the root table's payload first, as
    /// the Go receiver requires (it reads the first payload's type as the batch's
    /// signal), then the others in their order; tables without rows are left out.
    ///
    /// Tables without metric rows are refused, and nothing is produced: receivers
    /// refuse such a batch (an empty one as a permanent error, one that starts with
    /// attributes by breaking the stream). [`encode_parts`](crate::encode_parts)
    /// gives none.
    ///
    /// On an error nothing of `tables` is to be sent, yet the payload types written
    /// before it have moved their IPC streams on (a schema or dictionaries the receiver
    /// will never see). So every IPC stream is dropped: the next batch starts each
    /// payload type afresh under a new schema id, which a receiver takes as a reset.
    pub fn produce(&mut self, tables: &MetricsTables) -> Result<BatchArrowRecords, ArrowError> {
        let root = PayloadType::UnivariateMetrics;
        if tables.get(root).is_none_or(|b| b.num_rows() == 0) {
            return Err(ArrowError::InvalidArgumentError(
                "a batch without metric rows: receivers refuse it, so nothing is produced"
                    .to_string(),
            ));
        }
        let ordered = tables
            .tables
            .iter()
            .filter(|(kind, _)| *kind == root)
            .chain(tables.tables.iter().filter(|(kind, _)| *kind != root));
        let mut payloads = Vec::with_capacity(tables.tables.len());
        for (kind, batch) in ordered {
            if batch.num_rows() == 0 {
                continue;
            }
            match self.payload(*kind, batch) {
                Ok(payload) => payloads.push(payload),
                Err(e) => {
                    self.streams.clear();
                    return Err(e);
                }
            }
        }
        let batch_id = self.next_batch_id;
        self.next_batch_id += 1;
        Ok(BatchArrowRecords {
            batch_id,
            arrow_payloads: payloads,
            headers: Vec::new(),
        })
    }

    /// `batch` with its dictionaries folded into the stream's (fresh ones when there
    /// is no stream of `kind`), and those dictionaries. A column that outgrows its
    /// keys gets wider ones: that is a new schema, so the stream is dropped and the
    /// batch folded again into fresh dictionaries.
    fn fold(
        &mut self,
        kind: PayloadType,
        batch: &RecordBatch,
    ) -> Result<(RecordBatch, Dictionaries), ArrowError> {
        let limit = self.options.u8_dictionary_limit;
        loop {
            let mut dictionaries = self
                .streams
                .get_mut(&kind)
                .map(|s| std::mem::take(&mut s.dictionaries))
                .unwrap_or_default();
            match dictionaries.apply(kind, batch, &mut self.widths, limit)? {
                Some(batch) => return Ok((batch, dictionaries)),
                None => {
                    self.streams.remove(&kind);
                }
            }
        }
    }

    fn payload(
        &mut self,
        kind: PayloadType,
        batch: &RecordBatch,
    ) -> Result<ArrowPayload, ArrowError> {
        let original = batch;
        let previous = self.streams.get(&kind).map(|s| s.fields.clone());
        let (batch, mut dictionaries) = self.fold(kind, original)?;
        // A batch that lacks only optional columns of the stream keeps it, with those
        // columns all null: no schema reset for a column that comes and goes (an
        // interval without doubles, without gauges). One that does not fit (a new
        // column, wider keys) starts a new schema, which keeps the optional columns of
        // the one before.
        let mut batch = match &previous {
            Some(fields) if same_shape(fields, batch.schema().fields()) => batch,
            Some(fields) => fit(&batch, fields, &mut dictionaries)
                .or_else(|| {
                    widened(&batch, fields).and_then(|f| fit(&batch, &f, &mut dictionaries))
                })
                .unwrap_or(batch),
            None => batch,
        };
        // A new schema is a new IPC stream, which sends its dictionaries whole: they
        // start afresh with this batch's values (as after wider keys, which dropped the
        // stream already), so that a reset costs this batch, not every value the stream
        // has sent since it began.
        if self.streams.contains_key(&kind)
            && previous
                .as_ref()
                .is_some_and(|f| !same_shape(f, batch.schema().fields()))
        {
            self.streams.remove(&kind);
            let fields = batch.schema().fields().clone();
            let (fresh, mut fresh_dictionaries) = self.fold(kind, original)?;
            batch = fit(&fresh, &fields, &mut fresh_dictionaries).unwrap_or(fresh);
            dictionaries = fresh_dictionaries;
        }
        let schema = batch.schema();
        let stream = match self.streams.entry(kind) {
            Entry::Occupied(entry) if same_shape(&entry.get().fields, schema.fields()) => {
                let stream = entry.into_mut();
                stream.dictionaries = dictionaries;
                stream
            }
            // A new schema: a new IPC stream under a new schema id. Its dictionaries
            // hold this batch's values only (above); the new writer sends them whole.
            entry => {
                // Buffers padded to 8 bytes, as the Go producer pads them, not to
                // Arrow's 64-byte default: padding is never compressed, and with zstd
                // IPC bodies it went on the wire as is (8-28 % of the bytes).
                let options = IpcWriteOptions::try_new(8, false, MetadataVersion::V5)?
                    .try_with_compression(match self.options.compression {
                        IpcCompression::Zstd => Some(CompressionType::ZSTD),
                        IpcCompression::None => None,
                    })?
                    .with_dictionary_handling(DictionaryHandling::Delta);
                // The writer puts the schema message in its buffer right away: it goes
                // out with this payload's dictionaries and record batch.
                let writer = StreamWriter::try_new_with_options(Vec::new(), &schema, options)?;
                let schema_id = self.next_schema_id.to_string();
                self.next_schema_id += 1;
                entry
                    .insert_entry(Stream {
                        schema_id,
                        fields: schema.fields().clone(),
                        writer,
                        dictionaries,
                    })
                    .into_mut()
            }
        };
        stream.writer.write(&batch)?;
        // Drain after every batch; never finish (no end-of-stream marker). The next
        // payload of this type is likely the same size: its buffer starts at that.
        let buffer = stream.writer.get_mut();
        let next = Vec::with_capacity(buffer.len());
        let record = std::mem::replace(buffer, next);
        Ok(ArrowPayload {
            schema_id: stream.schema_id.clone(),
            r#type: kind as i32,
            record,
        })
    }
}
