"""Ingestion: a document file into chunks, vectors and a collection (parse, OCR, chunk, embed)."""
