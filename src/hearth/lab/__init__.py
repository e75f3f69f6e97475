"""The model lab: a load generator for any OpenAI-compatible endpoint, metrics with written
definitions (docs/lab-metrics.md), runs stored in PostgreSQL beside the catalog, resumable
after a preemption."""
