"""mgreview engine: intake facts in, cited findings and a suggested magnesium plan out."""

__version__ = "0.1.0"  # the one version of mgreview: pyproject.toml reads it, every result records it
ENGINE_VERSION = __version__
