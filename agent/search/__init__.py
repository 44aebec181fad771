"""Search: collections on disk, their vector and keyword indexes, and the hybrid fusion."""
