"""A prompt-injection heuristic: weighted phrase signals combined into a score in [0, 1].

Each signal is a phrase family seen in injection attempts, in English and Chinese, with a weight that
says how sure that phrase alone makes us. Signals combine as independent evidence (noisy-OR):
``score = 1 - Π(1 - weight)`` over the signals present, each counted once. With the default threshold
0.7 one strong signal is enough: an override of earlier instructions ("ignore all previous
instructions", "disregard the system prompt", "忽略之前的指令", "忽略以上所有") or an unrestricted persona
("you are now DAN"). Weaker ones only count together: asking for the system prompt, "you are now" /
"你现在是", role-play markers, "without any restrictions", "system:" at the start of a line, chat-template
tokens, a base64 blob to decode and obey. A negated override ("don't ignore the instructions above",
"不要忽略之前的要求") does not count.

This is a cheap first line, not a classifier: a paraphrase it has no phrase for scores 0, and a user
quoting an attack ("what does 'ignore previous instructions' do?") scores like the attack, which is
what ``prompt_injection: flag`` is for. The weights were set against the labelled examples in
``tests/unit/guardrails/test_injection.py``.

Cost: patterns run on a lowercased copy, and each only when its required words all occur in the text
(substring tests), so ordinary text costs a copy and a few ``in`` tests; every gap in a pattern is
bounded, so a hostile text costs linear time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    name: str
    weight: float
    requires: tuple[tuple[str, ...], ...]  # lowercase words: one of each group occurs in every match
    pattern: re.Pattern[str]  # run on the lowercased text
    negations: tuple[str, ...] = ()  # a match right after one of these does not count

    def present(self, lowered: str) -> bool:
        if not all(any(word in lowered for word in group) for group in self.requires):
            return False
        for match in self.pattern.finditer(lowered):
            before = lowered[max(0, match.start() - 8) : match.start()]
            if not any(before.endswith(negation) for negation in self.negations):
                return True
        return False


def _signal(name: str, weight: float, requires: str, pattern: str, negations: str = "") -> Signal:
    groups = tuple(tuple(group.split("|")) for group in requires.split(";"))
    return Signal(name, weight, groups, re.compile(pattern), tuple(negations.split("|")) if negations else ())


_NEGATIONS_EN = "n't |not |never "
_NEGATIONS_ZH = "不要|不能|请勿|不可|别|勿|不得"
_OVERRIDE_EN = "ignore|disregard|forget|override|bypass|skip|abandon"
_QUALIFIER_EN = (
    "previous|prior|above|earlier|preceding|foregoing|original|initial|system|developer|all|any|your"
)
_NOUN_EN = (
    "instructions?|prompts?|rules|directives?|guidelines|commands?|constraints|programming|restrictions"
    "|guardrails"
)
_GAP_EN = r"[^.!?\n]{0,40}?"  # a bounded stretch within one sentence
_GAP_ZH = r"[^。！？!?\n]{0,10}?"

SIGNALS: tuple[Signal, ...] = (
    _signal(
        "override_instructions",
        0.75,
        f"{_OVERRIDE_EN};{_NOUN_EN.replace('s?', '')}",
        # verb, a noun phrase of at most a few determiners/qualifiers holding one anchor, the noun
        rf"(?:{_OVERRIDE_EN})\s+(?:(?:the|all|any|of|my|these|those|every|each|given)\s+){{0,3}}"
        rf"(?:{_QUALIFIER_EN})\s+(?:(?:the|of|{_QUALIFIER_EN}|safety|given|existing)\s+){{0,2}}"
        rf"(?:{_NOUN_EN})(?![a-z])",
        _NEGATIONS_EN,
    ),
    _signal(
        "override_everything_above",
        0.75,
        f"{_OVERRIDE_EN};above|before|previous|so far|earlier|prior",
        rf"(?:{_OVERRIDE_EN})\s+(?:all\s+(?:of\s+)?)?(?:everything|anything|all|what(?:ever)?\s+(?:i|we|you)"
        r"\s+(?:said|told\s+you|wrote))\s+(?:(?:that\s+)?(?:was\s+)?(?:said|written|stated)\s+)?"
        r"(?:above|before|previously|so\s+far|earlier|prior)",
        _NEGATIONS_EN,
    ),
    _signal(
        "override_instructions_zh",
        0.75,
        "忽略|无视|忽视|忘记|忘掉|理会|跳过|抛弃|放弃",
        r"(?:忽略|无视|忽视|忘记|忘掉|不要理会|别理会|不用理会|跳过|抛弃|放弃)"
        + _GAP_ZH
        + r"(?:(?:之前|以前|先前|此前|上面|上述|以上|前面|原来|原有|原始|所有|全部|一切|系统)"
        + _GAP_ZH
        + r"(?:指令|指示|提示|命令|规则|设定|要求|约束|限制|说明)"
        r"|(?:以上|上面|上述|前面|之前)的?(?:所有|全部|一切|内容))",
        _NEGATIONS_ZH,
    ),
    _signal(
        "reveal_system_prompt",
        0.65,
        "reveal|show|print|display|output|repeat|leak|dump|tell me|give me|what;"
        "prompt|instructions|message|rules;"
        "system|initial|hidden|original|secret|developer|full|exact|first",
        r"(?:reveal|show|print|display|output|repeat|leak|dump|tell\s+me|give\s+me|what\s+(?:is|are|was))\b"
        + _GAP_EN
        + r"\b(?:your|the)\s+(?:(?:system|initial|hidden|original|secret|developer|full|exact|first)\s+){1,2}"
        r"(?:prompt|instructions|message|rules)",
    ),
    _signal(
        "reveal_system_prompt_zh",
        0.65,
        "显示|输出|告诉|重复|泄露|打印|给我看|说出;系统|指令|system",
        r"(?:显示|输出|告诉我|重复|泄露|打印|给我看|说出)"
        + _GAP_ZH
        + r"(?:系统提示|系统指令|初始指令|原始指令|隐藏指令|system\s?prompt)",
    ),
    _signal(
        "repeat_everything_above",
        0.35,
        "verbatim|word for word|above|before this",
        r"verbatim|word\s+for\s+word|everything\s+(?:above|before\s+this)|the\s+text\s+above",
    ),
    _signal(
        "persona_unrestricted",
        0.7,
        "you are now|you're now",
        r"you(?:\s+are|'re)\s+now\s+(?:an?\s+|the\s+|in\s+)?(?:dan|unrestricted|unfiltered|uncensored"
        r"|jailbroken|evil|freed?|liberated|no\s+longer|developer\s+mode|god\s+mode)\b",
    ),
    _signal("do_anything_now", 0.6, "anything now", r"do\s+anything\s+now\b"),
    _signal(
        "jailbreak_mode",
        0.4,
        "jailbr|developer mode|god mode|越狱|开发者模式",
        r"jailbr(?:eak|oken)|(?:developer|god)\s+mode\b|越狱|开发者模式",
    ),
    _signal("you_are_now", 0.25, "you are now|you're now", r"you(?:\s+are|'re)\s+now\b"),
    _signal("you_are_now_zh", 0.3, "你现在是|从现在", r"你现在是|从现在(?:开始|起)[，,]?\s?你"),
    _signal(
        "role_play",
        0.25,
        "pretend|act as|role|in character",
        r"pretend\s+(?:to\s+be|you\s+are|you're|that\s+you)\b|act\s+as\s+(?:an?\s+)?(?:unfiltered"
        r"|unrestricted|evil|uncensored)|role-?play\s+as\b|stay\s+in\s+character\b",
    ),
    _signal(
        "no_restrictions",
        0.45,
        "without|no |free of|free from|bound by|bypass|remove|disable;"
        "restriction|limitation|filter|censorship|guardrail|safety|ethical|polic|moral",
        r"(?:without|no|free\s+(?:of|from)|not\s+bound\s+by|bypass|remove|disable)\s+(?:any\s+|all\s+|your\s+"
        r"|the\s+|of\s+){0,2}(?:restrictions|limitations|filters|filtering|censorship|guardrails"
        r"|safety\s+(?:rules|guidelines|filters)|ethical\s+(?:guidelines|constraints)|content\s+polic(?:y|ies)"
        r"|moral(?:s|ity)?)\b",
    ),
    _signal(
        "no_restrictions_zh",
        0.45,
        "不受|没有|无视|摆脱|绕过|解除",
        r"(?:不受|没有|无视|摆脱|绕过|解除)(?:任何)?(?:限制|约束|规则|审查|道德|过滤)",
    ),
    _signal(
        "chat_template_tokens",
        0.5,
        "<||[inst]|[/inst]|<<sys>>|<</sys>>",
        r"<\|(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\|>|\[/?inst\]|<</?sys>>",
    ),
    _signal(
        "role_line",
        0.4,
        "system|developer|assistant|系统;:|：",
        r"(?m)^[ \t>#*\[]{0,8}(?:system|developer|assistant|系统)[ \t\]]{0,3}[:：]",
    ),
    _signal(
        "decode_and_follow",
        0.5,
        "decode|decrypt|解码|解密",
        r"(?:decode|decrypt|解码|解密)[^.!?\n。]{0,60}?(?:\band\b|\bthen\b|并|然后)"
        r"[^.!?\n。]{0,30}?(?:\bfollow|\bexecute|\bobey|\bdo\s+(?:it|what)|\brun\b|执行|照做|遵循|遵守)",
    ),
)

# "DAN" is a jailbreak persona only in capitals ("Dan" is a name): checked on the original text.
DAN_WEIGHT = 0.6
_DAN = re.compile(r"(?<![A-Za-z])DAN(?![A-Za-z])")
# A base64-looking blob next to a request to decode it is an encoded payload.
ENCODED_WEIGHT = 0.45
_DECODE_WORDS = ("decode", "base64", "b64", "rot13", "decrypt", "解码", "解密")
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def injection_signals(text: str) -> list[tuple[str, float]]:
    """The signals present in ``text``, as (name, weight)."""
    lowered = text.lower()
    found = [(signal.name, signal.weight) for signal in SIGNALS if signal.present(lowered)]
    if "DAN" in text and _DAN.search(text) and all(name != "do_anything_now" for name, _ in found):
        found.append(("do_anything_now", DAN_WEIGHT))
    if any(word in lowered for word in _DECODE_WORDS) and _BASE64_BLOB.search(text):
        found.append(("encoded_payload", ENCODED_WEIGHT))
    return found


def injection_score(text: str) -> float:
    """How much ``text`` looks like a prompt-injection attempt, in [0, 1] (noisy-OR of its signals)."""
    remaining = 1.0
    for _, weight in injection_signals(text):
        remaining *= 1.0 - weight
    return round(1.0 - remaining, 4)
