"""The Anthropic/OpenAI streaming stand-in served at /llm."""
