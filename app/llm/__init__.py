"""LLM provider adapters (Anthropic Messages, OpenAI Chat Completions) behind `ports.Provider`."""

from app.llm.anthropic import AnthropicProvider
from app.llm.factory import Providers, build_providers
from app.llm.openai import OpenAIProvider

__all__ = ["AnthropicProvider", "OpenAIProvider", "Providers", "build_providers"]
