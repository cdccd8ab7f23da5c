#!/usr/bin/env python3
"""Independent check of an OTAP metrics stream written by `exporter:otap` (file mode).

It shares no code with the encoder: a small protobuf reader parses the length-delimited
BatchArrowRecords, pyarrow reads each payload type's Arrow IPC stream, and the tables
are held to the columns of ../shared/OTAP.md (names, types, required columns without
nulls, no unknown column). Ids are decoded as the upstream consumers do (delta,
quasi-delta), the data points are rebuilt, and the totals of the engine's own metrics
are compared with what the engine recorded.

usage: otap_check.py FILE --expect-items N
"""
import argparse
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


def read_bars(path):
    data = open(path, "rb").read()
    i, bars = 0, []
    while i < len(data):
        n, i = varint(data, i)
        bar = {"batch_id": 0, "payloads": []}
        for tag, value in fields(data[i:i + n]):
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
        bars.append(bar)
        i += n
    return bars


TS = pa.timestamp("ns")
BUCKETS = pa.struct([("offset", pa.int32()), ("bucket_counts", pa.list_(pa.uint64()))])
ATTRS = {"parent_id": (pa.uint16(), True), "key": (pa.string(), True), "type": (pa.uint8(), True),
         "str": (pa.string(), False), "int": (pa.int64(), False), "double": (pa.float64(), False),
         "bool": (pa.bool_(), False)}
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
        "start_time_unix_nano": (TS, False), "time_unix_nano": (TS, False),
        "int_value": (pa.int64(), False), "double_value": (pa.float64(), False), "flags": (pa.uint32(), False)}),
    13: ("HISTOGRAM_DATA_POINTS", {
        "id": (pa.uint32(), False), "parent_id": (pa.uint16(), True),
        "start_time_unix_nano": (TS, False), "time_unix_nano": (TS, False), "count": (pa.uint64(), False),
        "sum": (pa.float64(), False), "min": (pa.float64(), False), "max": (pa.float64(), False),
        "bucket_counts": (pa.list_(pa.uint64()), False), "explicit_bounds": (pa.list_(pa.float64()), False),
        "flags": (pa.uint32(), False)}),
    14: ("EXP_HISTOGRAM_DATA_POINTS", {
        "id": (pa.uint32(), False), "parent_id": (pa.uint16(), True),
        "start_time_unix_nano": (TS, False), "time_unix_nano": (TS, False), "count": (pa.uint64(), False),
        "sum": (pa.float64(), False), "min": (pa.float64(), False), "max": (pa.float64(), False),
        "scale": (pa.int32(), False), "zero_count": (pa.uint64(), False), "zero_threshold": (pa.float64(), False),
        "positive": (BUCKETS, False), "negative": (BUCKETS, False), "flags": (pa.uint32(), False)}),
}


def check_columns(kind, table):
    name, spec = TABLES[kind]
    for field in table.schema:
        if field.name not in spec:
            raise AssertionError(f"{name}: unknown column {field.name}")
        want, _ = spec[field.name]
        got = field.type
        if pa.types.is_struct(want) or pa.types.is_list(want):
            ok = str(got).replace(" not null", "") == str(want).replace(" not null", "")
        else:
            ok = got == want
        if not ok:
            raise AssertionError(f"{name}.{field.name}: type {got}, expected {want}")
    for column, (_, required) in spec.items():
        if required:
            if column not in table.column_names:
                raise AssertionError(f"{name}: required column {column} missing")
            if table.column(column).null_count:
                raise AssertionError(f"{name}: required column {column} has nulls")


def undelta(values):
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def attributes(table):
    """Quasi-delta parent ids (OTAP.md section 4.3) -> {parent: {key: value}}."""
    out, prev, prev_pid = defaultdict(dict), None, 0
    cols = {c: table.column(c).to_pylist() for c in table.column_names}
    for i in range(table.num_rows):
        kind, key = cols["type"][i], cols["key"][i]
        value = {1: cols.get("str"), 2: cols.get("int"), 3: cols.get("double"), 4: cols.get("bool")}[kind][i]
        this = (kind, key, value)
        pid = prev_pid + cols["parent_id"][i] if prev == this else cols["parent_id"][i]
        prev, prev_pid = this, pid
        out[pid][key] = value
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--expect-items", type=int, required=True)
    args = parser.parse_args()

    bars = read_bars(args.file)
    assert bars, "no BatchArrowRecords in the file"
    assert [b["batch_id"] for b in bars] == list(range(len(bars))), "batch ids 0, 1, 2, ..."

    # One IPC stream per schema id; a schema id belongs to one payload type.
    streams, kinds = defaultdict(list), {}
    for bar in bars:
        seen = set()
        for p in bar["payloads"]:
            assert p["type"] in TABLES, f"payload type {p['type']} not for metrics"
            assert p["type"] not in seen, "one payload per type in a BAR"
            seen.add(p["type"])
            assert kinds.setdefault(p["schema_id"], p["type"]) == p["type"], "schema id shared by two types"
            assert not p["record"].endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00"), "EOS marker"
            streams[p["schema_id"]].append(p["record"])
    batches = {}
    for schema_id, chunks in streams.items():
        read = list(ipc.open_stream(pa.BufferReader(b"".join(chunks))))
        assert len(read) == len(chunks), f"schema {schema_id}: {len(read)} batches for {len(chunks)} payloads"
        batches[schema_id] = iter(read)

    totals = defaultdict(int)
    histograms = 0
    for bar in bars:
        tables = {}
        for p in bar["payloads"]:
            table = pa.Table.from_batches([next(batches[p["schema_id"]])])
            check_columns(p["type"], table)
            tables[p["type"]] = table
        root = tables[10]
        ids = undelta(root.column("id").to_pylist())
        assert ids == list(range(root.num_rows)), "root ids 0..n in row order"
        scope = root.column("scope").combine_chunks()
        scope_ids = undelta(scope.field("id").to_pylist())
        scope_names = scope.field("name").to_pylist()
        names = root.column("name").to_pylist()
        scope_attrs = attributes(tables[2]) if 2 in tables else {}
        if 11 in tables:
            dp = tables[11]
            parents = undelta(dp.column("parent_id").to_pylist())
            ints = dp.column("int_value").to_pylist()
            for parent, value in zip(parents, ints):
                attrs = scope_attrs.get(scope_ids[parent], {})
                if scope_names[parent] == "engine.node" and attrs.get("pipeline.group") == "demo" and value is not None:
                    totals[(attrs["node.id"], attrs.get("core.id"), names[parent])] += value
        if 14 in tables:
            for row in tables[14].to_pylist():
                buckets = sum(row["positive"]["bucket_counts"]) + sum(row["negative"]["bucket_counts"])
                assert buckets + row["zero_count"] == row["count"], "histogram buckets hold every value"
                histograms += 1

    cores = sorted({core for (_, core, _) in totals})
    assert cores, f"no engine.node points of pipeline group demo: {dict(totals)}"
    for core in cores:
        for node, metric in [("generator", "produced_items"), ("noop", "consumed_items")]:
            got = totals[(node, core, metric)]
            assert got == args.expect_items, f"core {core} {node}.{metric}: {got}, expected {args.expect_items}"
    print(f"otap_check: {len(bars)} BatchArrowRecords, {len(streams)} IPC streams, "
          f"{len(cores)} cores x {args.expect_items} items conserved, {histograms} exponential histograms ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"otap_check: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
