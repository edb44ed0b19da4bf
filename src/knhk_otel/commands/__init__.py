"""One module per `knhk-otel` subcommand: argument parsing and exit codes, no pipeline logic."""
