"""Builders for the models tests and examples use: small, seeded, exported at test time."""
