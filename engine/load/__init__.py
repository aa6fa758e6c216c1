"""Loading flow files: YAML with positions, flow building, static analysis, discovery, JSON Schema."""
