"""Command-line interface (`grapepose COMMAND ...`)."""
