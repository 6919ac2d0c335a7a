"""Atheris (libFuzzer) harnesses for selfcare's parsers; see fuzz/README.md."""
