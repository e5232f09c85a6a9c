"""Build the bundled ``tiny-chat`` model: tokenizer + a small Llama trained on a generated dialogue corpus.

    python tools/build_tiny_model.py                      # writes src/llmserve/models/tiny-chat
    python tools/build_tiny_model.py --out /tmp/tiny --steps 200

Deterministic on a CPU: the corpus, the tokenizer and the weights are functions of ``--seed`` (same
machine, same thread count). The result is an ordinary Hugging Face model directory, loaded by
``AutoModelForCausalLM.from_pretrained`` like any other, with a ChatML chat template whose
``<|im_end|>`` is the EOS token, so replies end by themselves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread keeps BPE training order fixed

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_corpus import Message, dialogues, tokenizer_training_text

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "src" / "llmserve" / "models" / "tiny-chat"
PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# ChatML without an injected default system prompt: what the client sends is what the model sees.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
IGNORE = -100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--dialogues", type=int, default=30000)
    parser.add_argument("--threads", type=int, default=2, help="fixed so float reductions run in one order")
    return parser.parse_args()


def train_tokenizer(seed: int, vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(tokenizer_training_text(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=None,
        model_max_length=512,
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],  # Llama takes no token_type_ids
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def encode_dialogue(
    tokenizer: PreTrainedTokenizerFast, messages: list[Message]
) -> tuple[list[int], list[int]]:
    """Token ids of the chat-templated dialogue and labels that train only the assistant's words + EOS."""
    start, end = (tokenizer.convert_tokens_to_ids(token) for token in (BOS, EOS))
    ids: list[int] = []
    labels: list[int] = []
    for message in messages:
        header = [start, *tokenizer.encode(message["role"] + "\n", add_special_tokens=False)]
        body = [*tokenizer.encode(message["content"], add_special_tokens=False), end]
        newline = tokenizer.encode("\n", add_special_tokens=False)
        ids += header + body + newline
        trained = message["role"] == "assistant"
        labels += (
            [IGNORE] * len(header) + (body if trained else [IGNORE] * len(body)) + [IGNORE] * len(newline)
        )
    return ids, labels


def check_template_agrees(tokenizer: PreTrainedTokenizerFast, messages: list[Message]) -> None:
    # Training must see exactly the ids the server's chat template will produce.
    rendered: Any = tokenizer.apply_chat_template(messages, tokenize=True)
    templated = list(rendered["input_ids"] if isinstance(rendered, dict) else rendered)
    pieces, _ = encode_dialogue(tokenizer, messages)
    if templated != pieces:
        raise SystemExit(f"chat template and training encoding disagree on {messages}")


def build_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=640,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def batches(
    examples: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, rng: random.Random
) -> Any:
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            order += rng.sample(range(len(examples)), len(examples))
        chosen = [examples[i] for i in order[:batch_size]]
        del order[:batch_size]
        width = max(len(ids) for ids, _ in chosen)
        input_ids = torch.full((batch_size, width), pad_id, dtype=torch.long)
        labels = torch.full((batch_size, width), IGNORE, dtype=torch.long)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        for row, (ids, label) in enumerate(chosen):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, : len(label)] = torch.tensor(label)
            attention[row, : len(ids)] = 1
        yield input_ids, labels, attention


def learning_rate(step: int, total: int, peak: float) -> float:
    warmup = max(1, total // 20)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model: LlamaForCausalLM, examples: list[tuple[list[int], list[int]]], args: argparse.Namespace,
          pad_id: int) -> None:  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    stream = batches(examples, args.batch_size, pad_id, random.Random(args.seed))
    model.train()
    started = time.monotonic()
    smoothed = None
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr)
        input_ids, labels, attention = next(stream)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        smoothed = loss.item() if smoothed is None else 0.95 * smoothed + 0.05 * loss.item()
        if step % 50 == 0 or step == args.steps - 1:
            elapsed = time.monotonic() - started
            eta = elapsed / (step + 1) * (args.steps - step - 1)
            progress = f"step {step + 1:>5}/{args.steps}  loss {smoothed:.3f}"
            print(f"{progress}  {elapsed:6.0f}s elapsed  ~{eta:4.0f}s left", flush=True)
    model.eval()


def sample_replies(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast) -> dict[str, str]:
    replies = {}
    for prompt in [
        "Hello!",
        "What is your name?",
        "What is 2 plus 3?",
        "你好",
        "中国的首都是哪里?",
        "Thanks!",
    ]:
        rendered: Any = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        with torch.no_grad():
            output = model.generate(**rendered, max_new_tokens=48, do_sample=False)
        new_tokens = output[0, rendered["input_ids"].shape[1] :]
        replies[prompt] = tokenizer.decode(new_tokens, skip_special_tokens=False)
    return replies


MODEL_CARD = """---
language: [en, zh]
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
---
# tiny-chat

The model bundled with llmserve so that `make serve` answers without a model hub. It is a
{params:,}-parameter `LlamaForCausalLM` (hidden 256, 4 layers, 4 heads, context 512 tokens) with a
{vocab}-token byte-level BPE tokenizer and a ChatML chat template (`<|im_end|>` is EOS).

It was trained from scratch in {minutes:.1f} minutes on a CPU by `tools/build_tiny_model.py` (seed {seed},
{steps} steps of {batch} dialogues) on a generated English and Chinese dialogue corpus
(`tools/tiny_corpus.py`): greetings, small talk and simple questions (capitals, colours, sums of two
digits, translations of a few words). It replies briefly and ends its replies by itself; it knows
nothing else. Use it to exercise a serving stack, never for answers.

Greedy replies after training:

{samples}
"""


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    started = time.monotonic()

    tokenizer = train_tokenizer(args.seed, args.vocab_size)
    corpus = list(dialogues(args.seed, args.dialogues))
    for messages in corpus[:200]:
        check_template_agrees(tokenizer, messages)
    examples = [encode_dialogue(tokenizer, messages) for messages in corpus]
    lengths = sorted(len(ids) for ids, _ in examples)
    print(f"tokenizer: {len(tokenizer)} tokens; corpus: {len(examples)} dialogues, "
          f"median {lengths[len(lengths) // 2]} / max {lengths[-1]} tokens", flush=True)  # fmt: skip

    model = build_model(tokenizer)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)
    train(model, examples, args, tokenizer.pad_token_id)
    samples = sample_replies(model, tokenizer)
    minutes = (time.monotonic() - started) / 60

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    generation_config = model.generation_config
    assert generation_config is not None  # every causal LM built from a config has one
    generation_config.eos_token_id = tokenizer.eos_token_id
    generation_config.pad_token_id = tokenizer.pad_token_id
    generation_config.bos_token_id = None
    model.save_pretrained(args.out, safe_serialization=True)
    # The template inside tokenizer_config.json (not chat_template.jinja): older transformers read it there.
    tokenizer.save_pretrained(args.out, save_jinja_files=False)
    sample_lines = "\n".join(f"- `{prompt}` → `{reply}`" for prompt, reply in samples.items())
    card = MODEL_CARD.format(params=params, vocab=len(tokenizer), minutes=minutes, seed=args.seed,
                             steps=args.steps, batch=args.batch_size, samples=sample_lines)  # fmt: skip
    (args.out / "README.md").write_text(card, encoding="utf-8")

    digest = hashlib.sha256((args.out / "model.safetensors").read_bytes()).hexdigest()
    size_mb = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    print(json.dumps(samples, ensure_ascii=False, indent=1))
    print(f"wrote {args.out} ({size_mb:.1f} MB, weights sha256 {digest[:16]}) in {minutes:.1f} min")


if __name__ == "__main__":
    main()
