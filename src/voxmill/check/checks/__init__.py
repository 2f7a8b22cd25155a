"""One module per family of checks; each exposes ``run(data) -> list[Finding]``."""
