"""The command line: the contract in DESIGN.md."""
