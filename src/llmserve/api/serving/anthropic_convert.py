"""Anthropic Messages requests → the pipeline's neutral messages and options, and its answers back.

The pipeline speaks OpenAI's shapes for tools (``types.ChatMessage.tool_calls``, function tools), so
``tool_use`` blocks become assistant ``tool_calls``, ``tool_result`` blocks become ``tool`` messages
and Anthropic's tools and ``tool_choice`` their OpenAI equivalents; the providers translate from
there (``providers/anthropic.py`` turns them back into Anthropic's for an Anthropic upstream).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from llmserve.errors import InvalidRequest, UpstreamError
from llmserve.schemas.anthropic import (
    AnthropicConversation,
    AnthropicImageBlock,
    AnthropicMessageParam,
    AnthropicMessagesRequest,
    AnthropicOtherBlock,
    AnthropicTextBlock,
    AnthropicToolChoice,
    AnthropicToolParam,
    AnthropicToolResultBlock,
    AnthropicToolUseBlock,
)
from llmserve.types import ChatMessage, Choice, FinishReason, GenerationOptions, Usage

STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "cancelled": "end_turn",
}
_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def untranslatable(body: AnthropicConversation) -> str | None:
    """Where the body holds something only an Anthropic upstream can take (an image, a thinking or
    document block, a server tool), as a ``param`` path; None when every part translates."""
    for position, message in enumerate(body.messages):
        if isinstance(message.content, str):
            continue
        for index, block in enumerate(message.content):
            if isinstance(block, AnthropicImageBlock | AnthropicOtherBlock) or (
                isinstance(block, AnthropicToolResultBlock) and block.has_images()
            ):
                return f"messages.{position}.content.{index}"
    for index, tool in enumerate(body.tools or ()):
        if tool.type not in (None, "custom"):
            return f"tools.{index}"
    return None


def chat_messages(body: AnthropicConversation) -> list[ChatMessage]:
    """The conversation as neutral messages: the system text first, then each turn in order."""
    system = body.system_text()
    messages = [ChatMessage("system", system)] if system else []
    for message in body.messages:
        messages.extend(_turn(message))
    return messages


def _turn(message: AnthropicMessageParam) -> list[ChatMessage]:
    if isinstance(message.content, str):
        return [ChatMessage(message.role, message.content)]
    text = "\n".join(block.text for block in message.content if isinstance(block, AnthropicTextBlock))
    if message.role == "assistant":
        calls = tuple(_tool_call(b) for b in message.content if isinstance(b, AnthropicToolUseBlock))
        return [ChatMessage("assistant", text, tool_calls=calls)]
    # OpenAI wants each tool's result in its own message right after the call; the user's own words
    # (Anthropic puts them after the results in the same turn) follow as a user message.
    results = [
        ChatMessage("tool", _result_text(block), tool_call_id=block.tool_use_id)
        for block in message.content
        if isinstance(block, AnthropicToolResultBlock)
    ]
    return [*results, ChatMessage("user", text)] if text or not results else results


def _result_text(block: AnthropicToolResultBlock) -> str:
    # OpenAI's tool message has no error flag: say it in the text, so the model still knows.
    return f"Error: {block.text()}" if block.is_error else block.text()


def _tool_call(block: AnthropicToolUseBlock) -> dict[str, Any]:
    arguments = orjson.dumps(block.input).decode()
    return {"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}}


def openai_tools(tools: Sequence[AnthropicToolParam]) -> tuple[dict[str, Any], ...]:
    converted = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description:
            function["description"] = tool.description
        converted.append({"type": "function", "function": function})
    return tuple(converted)


def openai_tool_choice(choice: AnthropicToolChoice | None) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice.name: Field required for type 'tool'", param="tool_choice.name")
        return {"type": "function", "function": {"name": choice.name}}
    return _TOOL_CHOICES[choice.type]


def options(body: AnthropicMessagesRequest) -> GenerationOptions:
    return GenerationOptions(
        max_tokens=body.max_tokens,
        temperature=1.0 if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        stop=tuple(body.stop_sequences or ()),
        tools=openai_tools(body.tools or ()),
        tool_choice=openai_tool_choice(body.tool_choice) if body.tools else None,
    )


def stop_reason(finish_reason: FinishReason | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def tool_input(arguments: Any, deployment: str) -> dict[str, Any]:
    """A tool call's arguments (OpenAI sends a JSON string) as the object Anthropic's ``input`` is."""
    try:
        parsed = orjson.loads(arguments or "{}") if isinstance(arguments, str | bytes) else arguments
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError(
            f"{deployment}: a tool call's arguments are not a JSON object", kind="protocol", retryable=False
        )
    return parsed


def content_blocks(choice: Choice, deployment: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": choice.text}] if choice.text else []
    for call in choice.tool_calls:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": function.get("name", ""),
                "input": tool_input(function.get("arguments"), deployment),
            }
        )
    return blocks


def usage_body(usage: Usage | None, input_tokens: int = 0) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": input_tokens, "output_tokens": 0}
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
