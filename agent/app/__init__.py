"""What the web pages use: background jobs, uploads, settings editing, sources, translations."""
