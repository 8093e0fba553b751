"""Pure audit-chain logic: canonical bytes and chain hashes (no I/O)."""
