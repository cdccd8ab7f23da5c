#!/usr/bin/env python3
"""Independent check of the OTAP metrics streams `exporter:otap` produces.

It shares no code with the encoder: a small protobuf reader parses BatchArrowRecords,
pyarrow reads each payload type's Arrow IPC stream, and the tables are held to the
columns of ../shared/OTAP.md (names, types, unsigned dictionary keys, required columns
without nulls, no unknown column). Ids are decoded as the upstream consumers do (delta,
quasi-delta), the data points are rebuilt, and the totals of the engine's own metrics
are compared with what the engine recorded.

usage:
  otap_check.py --file FILE [--expect-items N]
      a file of length-delimited BatchArrowRecords (one stream)
  otap_check.py --listen --port-file P --expect-items N [--expect-reset] [--dump-dir D]
      a gRPC sink: serves ArrowMetricsService/ArrowMetrics on 127.0.0.1 (a free port,
      written to P), answers every batch with BatchStatus OK, and on SIGTERM checks
      every stream it received (and writes each to D/stream-N.bin)
  --digest FILE writes what every point added up to, for tools/otap-peer to compare
"""
import argparse
import json
import os
import struct
import sys
from collections import defaultdict

import pyarrow as pa
import pyarrow.ipc as ipc


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        tag, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            value, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"unexpected wire type {wire} for tag {tag}")
        yield tag, value


def parse_bar(message):
    bar = {"batch_id": 0, "payloads": []}
    for tag, value in fields(message):
        if tag == 1:
            bar["batch_id"] = value
        elif tag == 2:
            payload = {"schema_id": "", "type": 0, "record": b""}
            for ptag, pvalue in fields(value):
                if ptag == 1:
                    payload["schema_id"] = pvalue.decode()
                elif ptag == 2:
                    payload["type"] = pvalue
                elif ptag == 3:
                    payload["record"] = pvalue
            bar["payloads"].append(payload)
    return bar


def read_bars(path):
    data = open(path, "rb").read()
    i, bars = 0, []
    while i < len(data):
        n, i = varint(data, i)
        bars.append(parse_bar(data[i:i + n]))
        i += n
    return bars


def put_varint(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def batch_status(batch_id, code=0, message=""):
    """A BatchStatus message: batch_id (1, int64), status_code (2, enum), status_message (3)."""
    out = b"\x08" + put_varint(batch_id & 0xFFFFFFFFFFFFFFFF)
    if code:
        out += b"\x10" + put_varint(code)
    if message:
        text = message.encode()
        out += b"\x1a" + put_varint(len(text)) + text
    return out


TS = pa.timestamp("ns", tz="UTC")
BUCKETS = pa.struct([("offset", pa.int32()), ("bucket_counts", pa.list_(pa.uint64()))])
ATTRS = {"parent_id": (pa.uint16(), True), "key": (pa.string(), True), "type": (pa.uint8(), True),
         "str": (pa.string(), False), "int": (pa.int64(), False), "double": (pa.float64(), False),
         "bool": (pa.bool_(), False)}
DP_ATTRS = dict(ATTRS, parent_id=(pa.uint32(), True))
TABLES = {
    1: ("RESOURCE_ATTRS", ATTRS),
    2: ("SCOPE_ATTRS", ATTRS),
    10: ("UNIVARIATE_METRICS", {
        "id": (pa.uint16(), True), "metric_type": (pa.uint8(), True), "name": (pa.string(), True),
        "description": (pa.string(), False), "unit": (pa.string(), False),
        "aggregation_temporality": (pa.int32(), False), "is_monotonic": (pa.bool_(), False),
        "schema_url": (pa.string(), False),
        "resource": (pa.struct([("id", pa.uint16())]), False),
        "scope": (pa.struct([("id", pa.uint16()), ("name", pa.string())]), False)}),
    11: ("NUMBER_DATA_POINTS", {
        "id": (pa.uint32(), False), "parent_id": (pa.uint16(), True),
        "start_time_unix_nano": (TS, False), "time_unix_nano": (TS, True),
        "int_value": (pa.int64(), False), "double_value": (pa.float64(), False), "flags": (pa.uint32(), False)}),
    13: ("HISTOGRAM_DATA_POINTS", {
        "id": (pa.uint32(), False), "parent_id": (pa.uint16(), True),
        "start_time_unix_nano": (TS, False), "time_unix_nano": (TS, True), "count": (pa.uint64(), False),
        "sum": (pa.float64(), False), "min": (pa.float64(), False), "max": (pa.float64(), False),
        "bucket_counts": (pa.list_(pa.uint64()), False), "explicit_bounds": (pa.list_(pa.float64()), False),
        "flags": (pa.uint32(), False)}),
    14: ("EXP_HISTOGRAM_DATA_POINTS", {
        "id": (pa.uint32(), False), "parent_id": (pa.uint16(), True),
        "start_time_unix_nano": (TS, False), "time_unix_nano": (TS, True), "count": (pa.uint64(), False),
        "sum": (pa.float64(), False), "min": (pa.float64(), False), "max": (pa.float64(), False),
        "scale": (pa.int32(), False), "zero_count": (pa.uint64(), False), "zero_threshold": (pa.float64(), False),
        "positive": (BUCKETS, False), "negative": (BUCKETS, False), "flags": (pa.uint32(), False)}),
    15: ("NUMBER_DP_ATTRS", DP_ATTRS),
    17: ("HISTOGRAM_DP_ATTRS", DP_ATTRS),
    18: ("EXP_HISTOGRAM_DP_ATTRS", DP_ATTRS),
}


ATTR_TABLES = (1, 2, 15, 17, 18)
DICT8 = {(10, "name"), (10, "description"), (10, "unit"), (10, "schema_url"), (10, "aggregation_temporality")} | \
        {(t, "key") for t in ATTR_TABLES} | {(t, "parent_id") for t in (15, 17, 18)}
DICT16 = {(t, c) for t in ATTR_TABLES for c in ("str", "int")}


def check_columns(kind, schema):
    """Column names and types of ../shared/OTAP.md section 3, dictionary keys included."""
    name, spec = TABLES[kind]
    for field in schema:
        if field.name not in spec:
            raise AssertionError(f"{name}: unknown column {field.name}")
        want, _ = spec[field.name]
        got = field.type
        if pa.types.is_dictionary(got):
            allowed = {pa.uint16()} if (kind, field.name) in DICT16 else {pa.uint8(), pa.uint16()}
            if (kind, field.name) not in DICT8 | DICT16:
                raise AssertionError(f"{name}.{field.name}: dictionary not allowed")
            if got.index_type not in allowed:
                raise AssertionError(f"{name}.{field.name}: dictionary key {got.index_type}, allowed {allowed}")
            got = got.value_type
        if pa.types.is_struct(got):
            for child in got:
                if pa.types.is_dictionary(child.type) and not (field.name == "scope" and child.name == "name"
                                                               and child.type.index_type in (pa.uint8(), pa.uint16())):
                    raise AssertionError(f"{name}.{field.name}.{child.name}: dictionary key {child.type}")
        if pa.types.is_struct(want) or pa.types.is_list(want):
            ok = str(plain_type(got)).replace(" not null", "") == str(want).replace(" not null", "")
        else:
            ok = got == want
        if not ok:
            raise AssertionError(f"{name}.{field.name}: type {got}, expected {want}")
    for column, (_, required) in spec.items():
        if required and column not in schema.names:
            raise AssertionError(f"{name}: required column {column} missing")


def check_required(kind, table):
    name, spec = TABLES[kind]
    for column, (_, required) in spec.items():
        if required and table.column(column).null_count:
            raise AssertionError(f"{name}: required column {column} has nulls")


def plain_type(t):
    if pa.types.is_dictionary(t):
        return t.value_type
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, plain_type(f.type)) for f in t])
    return t


def decoded(table):
    """Dictionary columns (top level and in structs) as plain ones; required columns
    without nulls."""
    columns = []
    for column in table.columns:
        array = column.combine_chunks()
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        elif pa.types.is_timestamp(array.type):
            array = array.cast(pa.int64())
        elif pa.types.is_struct(array.type):
            children = [array.field(i) for i in range(array.type.num_fields)]
            children = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in children]
            array = pa.StructArray.from_arrays(children, [f.name for f in array.type], mask=array.is_null())
        columns.append(array)
    return pa.Table.from_arrays(columns, names=table.column_names)


def undelta(values):
    """OTAP.md section 4.2: a running sum; a null stays null and does not advance it."""
    out, total = [], 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        total += v
        out.append(total)
    return out


def attributes(table):
    """Quasi-delta parent ids (OTAP.md section 4.3) -> {parent: {key: value}}."""
    out, prev, prev_pid = defaultdict(dict), None, 0
    cols = {c: table.column(c).to_pylist() for c in table.column_names}
    absent = [None] * table.num_rows  # a missing optional column reads as all null
    for i in range(table.num_rows):
        kind, key = cols["type"][i], cols["key"][i]
        value = {1: cols.get("str", absent), 2: cols.get("int", absent), 3: cols.get("double", absent),
                 4: cols.get("bool", absent)}[kind][i]
        assert value is not None, f"attribute {key}: no value in the column of its type {kind}"
        this = (kind, key, value)
        pid = prev_pid + cols["parent_id"][i] if prev == this else cols["parent_id"][i]
        prev, prev_pid = this, pid
        out[pid][key] = value
    return out


# Point tables: (label, their attribute table, the integer and the double the digest
# adds up).
POINTS = {11: ("number", 15, "int_value", "double_value"), 13: ("histogram", 17, "count", "sum"),
          14: ("exp_histogram", 18, "count", "sum")}


def bits(value):
    """A double's IEEE bits, as an unsigned integer (0 for a null)."""
    return 0 if value is None else struct.unpack("<Q", struct.pack("<d", value))[0]


def points(tables, digest):
    """Rebuilds every data point of one BatchArrowRecords: yields (attributes, scope
    name, metric name, value), the attributes being the scope's and the point's
    together. Each point is also counted in `digest`, keyed by kind, scope, metric and
    attributes (as `key=json,...`, keys sorted), as [points, sum of integer values or
    counts, wrapping sum of the bits of double values or histogram sums, wrapping sum
    of start + 3 * time]:
    tools/otap-peer, a decoder that shares no code with this one, must add up to the
    same digest."""
    root = tables[10]
    ids = undelta(root.column("id").to_pylist())
    assert ids == list(range(root.num_rows)), "root ids 0..n in row order"
    scope = root.column("scope").combine_chunks()
    scope_ids = undelta(scope.field("id").to_pylist())
    scope_names = scope.field("name").to_pylist()
    names = root.column("name").to_pylist()
    scope_attrs = attributes(tables[2]) if 2 in tables else {}
    for kind, (label, attr_kind, value_column, double_column) in POINTS.items():
        if kind not in tables:
            continue
        dp = tables[kind]
        absent = [None] * dp.num_rows
        parents = undelta(dp.column("parent_id").to_pylist())
        values = dp.column(value_column).to_pylist() if value_column in dp.column_names else absent
        doubles = dp.column(double_column).to_pylist() if double_column in dp.column_names else absent
        starts = dp.column("start_time_unix_nano").to_pylist() if "start_time_unix_nano" in dp.column_names else absent
        times = dp.column("time_unix_nano").to_pylist() if "time_unix_nano" in dp.column_names else absent
        # Data-point ids (delta) and their attributes (the kept core.id).
        dp_ids = undelta(dp.column("id").to_pylist()) if "id" in dp.column_names else absent
        dp_attrs = attributes(tables[attr_kind]) if attr_kind in tables else {}
        assert not dp_attrs or "id" in dp.column_names, "point attributes without point ids"
        for parent, value, double, start, time, dp_id in zip(parents, values, doubles, starts, times, dp_ids):
            attrs = dict(scope_attrs.get(scope_ids[parent], {}))
            own = dp_attrs.get(dp_id, {})
            assert not attrs.keys() & own.keys(), f"attributes {attrs.keys() & own.keys()} on scope and point"
            attrs.update(own)
            key = "\t".join([label, scope_names[parent] or "", names[parent], ",".join(
                f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(attrs.items()))])
            entry = digest[key]
            entry[0] += 1
            entry[1] += value or 0
            entry[2] = (entry[2] + bits(double)) % 2**64
            entry[3] = (entry[3] + (start or 0) + 3 * (time or 0)) % 2**64
            yield attrs, scope_names[parent], names[parent], value


def check_stream(bars, totals, digest):
    """Decodes one gRPC stream (or file); adds the engine.node totals of pipeline group
    `demo` to `totals` and every point to `digest` (see `points`). Returns (IPC streams,
    exponential histograms, schema resets)."""
    assert bars, "a stream without BatchArrowRecords"
    assert [b["batch_id"] for b in bars] == list(range(len(bars))), "batch ids 0, 1, 2, ..."

    # One IPC stream per schema id; a schema id belongs to one payload type; a new
    # schema id for a type already seen is a schema reset.
    streams, kinds, resets = defaultdict(list), {}, 0
    current, successors = {}, []
    for bar in bars:
        # The Go receiver reads the first payload's type as the batch's signal.
        assert bar["payloads"] and bar["payloads"][0]["type"] == 10, "UNIVARIATE_METRICS first in every batch"
        seen = set()
        for p in bar["payloads"]:
            assert p["type"] in TABLES, f"payload type {p['type']} not for metrics"
            assert p["type"] not in seen, "one payload per type in a BAR"
            seen.add(p["type"])
            assert kinds.setdefault(p["schema_id"], p["type"]) == p["type"], "schema id shared by two types"
            assert not p["record"].endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00"), "EOS marker"
            if current.get(p["type"], p["schema_id"]) != p["schema_id"]:
                assert p["schema_id"] not in streams, "a schema id came back after a reset"
                successors.append((current[p["type"]], p["schema_id"]))
                resets += 1
            current[p["type"]] = p["schema_id"]
            streams[p["schema_id"]].append(p["record"])
    batches = {}
    for schema_id, chunks in streams.items():
        # Each payload must hold exactly one record batch: read them one at a time, as
        # the upstream consumers do, from the concatenated IPC stream.
        read = list(ipc.open_stream(pa.BufferReader(b"".join(chunks))))
        assert len(read) == len(chunks), f"schema {schema_id}: {len(read)} batches for {len(chunks)} payloads"
        batches[schema_id] = iter(read)
    # A new schema keeps the optional columns of the one before: a column that comes
    # and goes costs one reset, not one each time it comes back.
    schema = {sid: ipc.open_stream(pa.BufferReader(chunks[0])).schema for sid, chunks in streams.items()}
    for before, after in successors:
        lost = set(schema[before].names) - set(schema[after].names)
        assert not lost, f"schema {after} dropped the columns {lost} of schema {before}"

    histograms = 0
    for bar in bars:
        tables = {}
        for p in bar["payloads"]:
            batch = next(batches[p["schema_id"]])
            check_columns(p["type"], batch.schema)
            tables[p["type"]] = decoded(pa.Table.from_batches([batch]))
            check_required(p["type"], tables[p["type"]])
        for attrs, scope, metric, value in points(tables, digest):
            if scope == "engine.node" and attrs.get("pipeline.group") == "demo" and value is not None:
                totals[(attrs["node.id"], attrs.get("core.id"), metric)] += value
        if 14 in tables:
            for row in tables[14].to_pylist():
                buckets = sum(row["positive"]["bucket_counts"]) + sum(row["negative"]["bucket_counts"])
                assert buckets + row["zero_count"] == row["count"], "histogram buckets hold every value"
                histograms += 1
    return len(streams), histograms, resets


def check_totals(totals, expect_items):
    cores = sorted({core for (_, core, _) in totals})
    assert cores, f"no engine.node points of pipeline group demo: {dict(totals)}"
    for core in cores:
        for node, metric in [("generator", "produced_items"), ("noop", "consumed_items")]:
            got = totals[(node, core, metric)]
            assert got == expect_items, f"core {core} {node}.{metric}: {got}, expected {expect_items}"
    return cores


def serve(port_file, expect_header=None):
    """Serves ArrowMetrics until SIGTERM; returns the BARs of every stream. With
    `expect_header` (name, value), a stream without that header is refused with
    UNAUTHENTICATED, as an auth interceptor would, and the check fails."""
    from concurrent import futures
    import signal
    import threading
    import grpc

    received, refused, lock = [], [], threading.Lock()

    def arrow_metrics(requests, context):
        if expect_header:
            name, value = expect_header
            got = dict(context.invocation_metadata()).get(name)
            if got != value:
                with lock:
                    refused.append(got)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, f"header {name}: {got!r}")
        bars = []
        with lock:
            received.append(bars)
        for message in requests:
            bar = parse_bar(message)
            bar["raw"] = message
            bars.append(bar)
            yield batch_status(bar["batch_id"])

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.experimental.arrow.v1.ArrowMetricsService",
        {"ArrowMetrics": grpc.stream_stream_rpc_method_handler(
            arrow_metrics, request_deserializer=None, response_serializer=None)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    import os
    os.replace(port_file + ".tmp", port_file)
    stop.wait()
    server.stop(grace=2).wait()
    with lock:
        assert not refused, f"streams without the expected header: {refused}"
        return [bars for bars in received if bars]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--file")
    parser.add_argument("--listen", action="store_true")
    parser.add_argument("--port-file")
    parser.add_argument("--expect-items", type=int,
                        help="fail unless, on every core, the demo pipeline produced and consumed N items")
    parser.add_argument("--expect-reset", action="store_true",
                        help="fail unless some stream had a schema reset in the middle")
    parser.add_argument("--min-streams", type=int, default=1,
                        help="fail unless at least this many gRPC streams delivered batches")
    parser.add_argument("--expect-header", metavar="NAME=VALUE",
                        help="refuse (and fail on) streams that do not carry this gRPC header")
    parser.add_argument("--dump-dir", help="write each gRPC stream received to DIR/stream-N.bin")
    parser.add_argument("--digest", metavar="FILE",
                        help="write every point's (kind, scope, metric, attributes): [points, sum] as JSON")
    args = parser.parse_args()
    if args.dump_dir and not args.listen:
        parser.error("--dump-dir goes with --listen")
    if args.listen == bool(args.file):
        parser.error("give --file FILE or --listen --port-file P")

    header = tuple(args.expect_header.split("=", 1)) if args.expect_header else None
    streams = serve(args.port_file, header) if args.listen else [read_bars(args.file)]
    if args.dump_dir:
        # Each gRPC stream as its own file of length-delimited BatchArrowRecords, the
        # file mode's format, for tools/otap-peer.
        for n, bars in enumerate(streams):
            with open(os.path.join(args.dump_dir, f"stream-{n}.bin"), "wb") as f:
                for bar in bars:
                    f.write(put_varint(len(bar["raw"])) + bar["raw"])
    assert streams, "nothing received"
    assert len(streams) >= args.min_streams, f"{len(streams)} streams, expected at least {args.min_streams}"
    totals, digest = defaultdict(int), defaultdict(lambda: [0, 0, 0, 0])
    ipc_streams = histograms = resets = 0
    for bars in streams:
        s, h, r = check_stream(bars, totals, digest)
        ipc_streams, histograms, resets = ipc_streams + s, histograms + h, resets + r
    conserved = ""
    if args.expect_items is not None:
        cores = check_totals(totals, args.expect_items)
        conserved = f"{len(cores)} cores x {args.expect_items} items conserved, "
    if args.expect_reset:
        assert resets, "no schema reset in the middle of a stream"
    if args.digest:
        with open(args.digest, "w") as f:
            json.dump(digest, f, sort_keys=True)
    bars = sum(len(b) for b in streams)
    print(f"otap_check: {len(streams)} stream(s), {bars} BatchArrowRecords, {ipc_streams} IPC streams, "
          f"{resets} schema resets, {conserved}{len(digest)} point keys, {histograms} exponential histograms ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"otap_check: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
