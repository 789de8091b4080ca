"""mgreview engine: intake facts in, cited findings and a suggested magnesium plan out."""

ENGINE_VERSION = "0.1.0"
