"""Adapters: the bubblewrap sandbox and the file evidence store."""
