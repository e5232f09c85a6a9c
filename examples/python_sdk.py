"""llmserve from the official openai SDK: sync, streaming and async, with no changes but the base URL.

make serve                      # in another terminal
python examples/python_sdk.py   # LLMSERVE_URL=http://host:port to point elsewhere
"""

from __future__ import annotations

import asyncio
import os

from openai import AsyncOpenAI, OpenAI

BASE_URL = os.environ.get("LLMSERVE_URL", "http://127.0.0.1:8888") + "/v1"
MODEL = os.environ.get("LLMSERVE_MODEL", "tiny-chat")


def sync_chat(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello!"}], temperature=0
    )
    print("sync:", reply.choices[0].message.content)
    assert reply.usage is not None
    print(f"usage: {reply.usage.prompt_tokens} prompt + {reply.usage.completion_tokens} completion tokens")


def streaming_chat(client: OpenAI) -> None:
    print("stream: ", end="", flush=True)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is your name?"}],
        temperature=0,
        stream=True,
    )
    for chunk in stream:
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
    print()


async def async_chat() -> None:
    client = AsyncOpenAI(base_url=BASE_URL, api_key="unused")
    prompts = ["你好", "What is the capital of France?", "Thanks!"]
    replies = await asyncio.gather(
        *(
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": prompt}], temperature=0
            )
            for prompt in prompts
        )
    )
    for prompt, reply in zip(prompts, replies, strict=True):
        print(f"async: {prompt} -> {reply.choices[0].message.content}")
    await client.close()


def main() -> None:
    client = OpenAI(base_url=BASE_URL, api_key="unused")  # no key is needed by default
    print("models:", [model.id for model in client.models.list()])
    sync_chat(client)
    streaming_chat(client)
    asyncio.run(async_chat())


if __name__ == "__main__":
    main()
