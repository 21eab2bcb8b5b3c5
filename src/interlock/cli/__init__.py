"""The ``interlock`` command line: parses input, calls down, renders results."""
