"""Benchmarks: the duplex conversation bench runner and performance measurements."""
