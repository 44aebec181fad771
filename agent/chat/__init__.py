"""Chat: the conversational engine, its memory and prompts, and the chat models (Ollama, embedded)."""
