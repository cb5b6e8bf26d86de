"""Model importers: each turns a file into a float Graph, faithfully (no optimization)."""
