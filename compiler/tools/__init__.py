"""Toolchain discovery, boards, reports."""
