"""The kernel atlas: public per-call kernel timings of many GPUs in one table (docs/atlas.md)."""
