"""Production data in staging, scrubbed: `steep data copy production staging` (docs/data.md)."""
