"""Command-line interface: thin typer commands over plain fedchain functions."""
