"""What the tile server does, as plain objects over a store, split by concern: no HTTP here."""
