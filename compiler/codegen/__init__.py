"""C code generation: lowering each node to a runtime kernel call, jinja2 templates."""
