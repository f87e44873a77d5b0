"""LLM provider adapters (Anthropic Messages, OpenAI Chat Completions) behind `ports.Provider`.

Import from the defining modules (`app.llm.factory.build_providers`, `app.llm.anthropic`, ...).
"""
