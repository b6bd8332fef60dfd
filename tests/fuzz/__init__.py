"""Fuzzing harness for ``workstation.imaging.load_study`` (see tests/fuzz/README.md)."""
