"""The domain and the use cases of selfcare. Imports no I/O library (see DESIGN.md)."""
