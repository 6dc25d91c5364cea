"""One module per group of commands; the CLI imports only the one a command needs."""
