"""Local HTTP servers that answer as the real backends do (see tests/samples/README.md)."""
