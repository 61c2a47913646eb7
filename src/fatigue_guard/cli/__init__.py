"""Command-line verbs: plain typer-annotated functions that cli.main registers."""
