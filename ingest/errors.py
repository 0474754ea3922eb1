class IngestError(Exception):
    """A source file cannot be ingested; the message is one line naming the reason."""
