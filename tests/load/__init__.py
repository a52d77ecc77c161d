"""Classroom load harness (issue #8): `python -m tests.load.run --sessions 30`. Not a test suite."""
