"""``llmserve chat``: stream an answer from a running server to the terminal."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from llmserve.cli.common import DEFAULT_SERVER_URL, err


def chat(
    prompt: Annotated[str, typer.Argument(help="What to ask")],
    url: Annotated[str, typer.Option(envvar="LLMSERVE_URL", help="Server base URL")] = DEFAULT_SERVER_URL,
    model: Annotated[str | None, typer.Option(help="Model group (default: the server's default)")] = None,
    system: Annotated[str | None, typer.Option(help="System prompt")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Upper bound on reply tokens")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature")] = 0.7,
    conversation_id: Annotated[str | None, typer.Option(help="Continue a stored conversation")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="LLMSERVE_API_KEY", help="Bearer key")] = None,
) -> None:
    """Stream an answer from a running server to the terminal."""
    from llmserve.cli.chat_client import ChatClientError, stream_chat

    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    body: dict[str, Any] = {"messages": messages, "stream": True, "temperature": temperature}
    for key, value in (("model", model), ("max_tokens", max_tokens), ("conversation_id", conversation_id)):
        if value is not None:
            body[key] = value
    try:
        for piece in stream_chat(url, body, api_key):
            sys.stdout.write(piece)
            sys.stdout.flush()
    except ChatClientError as exc:
        err.print(f"\n[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    sys.stdout.write("\n")
