"""A package that `python -m cli_pkg` runs, for tests/test_cli.py."""
