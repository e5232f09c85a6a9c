"""Output guardrails on what leaves llmserve: whole completions, and streams piece by piece."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmserve.types import Choice, Completion, Delta, StreamEvent

if TYPE_CHECKING:
    from llmserve.guardrails import OutputMasker
    from llmserve.services.admission import Pass


def masked_completion(completion: Completion, admitted: Pass | None) -> Completion:
    if admitted is None or not masks_output(admitted):
        return completion
    choices = [
        Choice(c.index, admitted.mask(c.text), c.finish_reason, c.tool_calls) for c in completion.choices
    ]
    return Completion(choices=choices, usage=completion.usage)


def masks_output(admitted: Pass | None) -> bool:
    return admitted is not None and admitted.guardrails is not None and admitted.guardrails.masks_output


class StreamMaskers:
    """One masker per choice, holding back what could still turn out to be PII. Only built for a
    caller whose output is masked: the stream passes its events on untouched otherwise."""

    def __init__(self, admitted: Pass) -> None:
        self._admitted = admitted
        self._by_choice: dict[int, OutputMasker] = {}

    def apply(self, event: StreamEvent) -> StreamEvent:
        if not isinstance(event, Delta):
            return event
        masker = self._by_choice.get(event.index)
        if masker is None:
            masker = self._admitted.output_masker()
            if masker is None:
                return event
            self._by_choice[event.index] = masker
        text = masker.feed(event.text)
        if event.finish_reason is not None:
            text += masker.flush()
        return Delta(event.index, text, event.finish_reason, event.tool_calls)
