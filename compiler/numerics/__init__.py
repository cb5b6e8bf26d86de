"""Integer primitives with no knowledge of graphs: TFLite fixed point, power-of-two (SeeDot)."""
