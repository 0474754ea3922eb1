"""The domain core that ingest and the server share: layers and their encodings,
time rules, settings, the COG reader, the Web Mercator grid and the verification
record. It imports no HTTP, no ingest and no renderers.
"""
