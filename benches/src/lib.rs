//! Shared fixtures of the benchmarks: the metric sets they record into.
