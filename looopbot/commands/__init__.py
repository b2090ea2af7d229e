"""One module per command; each command is a function of its parsed args returning an exit code."""
