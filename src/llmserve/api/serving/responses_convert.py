"""Responses API items ⇄ the pipeline's chat messages, options and completions.

Input items (``message`` with ``input_text`` / ``output_text`` parts, ``function_call``,
``function_call_output``) become chat messages; function tools, ``tool_choice`` and ``text.format``
become the chat call's tools and ``response_format``; a completion's choice becomes output items
(an assistant ``message`` and one ``function_call`` per tool call). Every item is stored with an id,
so ``input_items`` can list them and a chain can be rebuilt from them.
"""

from __future__ import annotations

import uuid
from typing import Any

from llmserve.errors import InvalidRequest
from llmserve.schemas.responses import ResponsesRequest, TextFormat
from llmserve.types import ChatMessage, Choice, GenerationOptions, Usage

TEXT_PARTS = ("input_text", "output_text", "text")
# Items a client may send back from a reasoning model's earlier answer: nothing for a chat call.
IGNORED_ITEMS = ("reasoning",)


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def normalized_input(body: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's input as items with ids; 400 naming the item that cannot be translated."""
    if isinstance(body.input, str):
        return [_message_item("user", body.input)]
    if not body.input:
        raise InvalidRequest("input must not be empty", param="input")
    return [_item(item, f"input.{position}") for position, item in enumerate(body.input)]


def _message_item(role: str, text: str, item_id: str | None = None) -> dict[str, Any]:
    part = "output_text" if role == "assistant" else "input_text"
    content: dict[str, Any] = {"type": part, "text": text}
    if part == "output_text":
        content["annotations"] = []
    item = {"type": "message", "id": item_id or new_item_id("msg"), "role": role, "content": [content]}
    if role == "assistant":
        item["status"] = "completed"
    return item


def _item(item: dict[str, Any], where: str) -> dict[str, Any]:
    kind = item.get("type", "message")
    if kind == "message":
        return _message(item, where)
    if kind == "function_call":
        call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments")
        if not all(isinstance(v, str) and v for v in (call_id, name)) or not isinstance(arguments, str):
            raise InvalidRequest("a function_call item needs call_id, name and arguments", param=where)
        item_id = item.get("id") or new_item_id("fc")
        fields = {"call_id": call_id, "name": name, "arguments": arguments}
        return {"type": "function_call", "id": item_id, **fields, "status": "completed"}
    if kind == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest("a function_call_output item needs its call_id", param=where)
        text = output if isinstance(output, str) else _parts_text(output, f"{where}.output")
        item_id = item.get("id") or new_item_id("fco")
        return {"type": "function_call_output", "id": item_id, "call_id": call_id, "output": text}
    if kind == "item_reference":  # resolved against the stored items before the call (ResponseStore)
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise InvalidRequest("an item_reference needs the id of a stored item", param=where)
        return {"type": "item_reference", "id": item["id"]}
    if kind in IGNORED_ITEMS:
        return {"type": kind, "id": item.get("id") or new_item_id("rs"), "summary": []}
    raise InvalidRequest(f"input items of type '{kind}' are not supported", param=f"{where}.type")


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise InvalidRequest(
            "a message item's role must be user, system, developer or assistant", param=where
        )
    content = item.get("content")
    text = content if isinstance(content, str) else _parts_text(content, f"{where}.content")
    return _message_item(role, text, item.get("id"))


def _parts_text(parts: Any, where: str) -> str:
    if not isinstance(parts, list):
        raise InvalidRequest("content must be a string or a list of content parts", param=where)
    texts = []
    for position, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in TEXT_PARTS or not isinstance(part.get("text"), str):
            # Images and files need a multimodal chat call, which the pipeline does not carry.
            raise InvalidRequest(
                f"content parts of type '{kind}' are not supported; send input_text",
                param=f"{where}.{position}",
            )
        texts.append(part["text"])
    return "".join(texts)


def chat_messages(items: list[dict[str, Any]], instructions: str | None = None) -> list[ChatMessage]:
    """Items (input and earlier output alike) → chat messages; consecutive function calls join the
    assistant message before them, as a chat completion carries them."""
    messages: list[ChatMessage] = [ChatMessage("system", instructions)] if instructions else []
    for item in items:
        kind = item["type"]
        if kind == "message":
            role = "system" if item["role"] == "developer" else item["role"]
            messages.append(ChatMessage(role, _parts_text(item["content"], "input")))
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                messages[-1] = ChatMessage("assistant", last.content, tool_calls=(*last.tool_calls, call))
            else:
                messages.append(ChatMessage("assistant", "", tool_calls=(call,)))
        elif kind == "function_call_output":
            messages.append(ChatMessage("tool", item["output"], tool_call_id=item["call_id"]))
    return messages


def chat_tools(tools: list[dict[str, Any]] | None) -> tuple[dict[str, Any], ...]:
    converted = []
    for position, tool in enumerate(tools or ()):
        if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise InvalidRequest(
                f"tools of type '{tool.get('type')}' are not supported; only function tools are",
                param=f"tools.{position}",
            )
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        converted.append({"type": "function", "function": function})
    return tuple(converted)


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise InvalidRequest(
                "tool_choice must be auto, none, required or a function", param="tool_choice"
            )
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("tool_choice may name a function tool only", param="tool_choice")


def response_format(text_format: TextFormat | None) -> dict[str, Any] | None:
    if text_format is None or text_format.type == "text":
        return None
    if text_format.type == "json_object":
        return {"type": "json_object"}
    if text_format.schema_ is None or not text_format.name:
        raise InvalidRequest("a json_schema format needs its name and schema", param="text.format")
    schema: dict[str, Any] = {"name": text_format.name, "schema": text_format.schema_}
    if text_format.strict is not None:
        schema["strict"] = text_format.strict
    return {"type": "json_schema", "json_schema": schema}


def options(body: ResponsesRequest) -> GenerationOptions:
    return GenerationOptions(
        max_tokens=body.max_output_tokens,
        temperature=1.0 if body.temperature is None else float(body.temperature),
        top_p=1.0 if body.top_p is None else float(body.top_p),
        tools=chat_tools(body.tools),
        tool_choice=chat_tool_choice(body.tool_choice),
        response_format=response_format(body.text.format if body.text else None),
    )


def output_items(choice: Choice, message_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if choice.text or not choice.tool_calls:
        items.append(_message_item("assistant", choice.text, message_id))
    for call in choice.tool_calls:
        function = call.get("function", {})
        items.append(
            {
                "type": "function_call",
                "id": new_item_id("fc"),
                "call_id": call.get("id") or new_item_id("call"),
                "name": function.get("name", ""),
                "arguments": function.get("arguments", ""),
                "status": "completed",
            }
        )
    return items


def usage_of(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }
