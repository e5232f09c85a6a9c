"""llmserve: any LLM as a production Web API."""

__version__ = "0.1.0"
