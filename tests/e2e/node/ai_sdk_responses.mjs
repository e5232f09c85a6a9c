// The Vercel AI SDK's default OpenAI provider model, `openai(model)`, which speaks the Responses API,
// against llmserve: one generateText and one streamText. Prints one JSON line with what the test checks.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [baseURL, modelId] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey: "unused" });
const model = openai(modelId);
// maxRetries 0: a retry would hide a first failure; temperature 0 so both calls say the same.
const options = { model, prompt: "What is your name?", temperature: 0, maxOutputTokens: 24, maxRetries: 0 };

const generated = await generateText(options);

let streamError = null;
const streamed = streamText({ ...options, onError: ({ error }) => { streamError = String(error); } });
const parts = [];
let deltas = "";
for await (const part of streamed.fullStream) {
  parts.push(part.type);
  if (part.type === "text-delta") deltas += part.text;
  if (part.type === "error") streamError = String(part.error);
}
const streamedText = await streamed.text;
const streamedUsage = await streamed.usage;
const streamedResponse = await streamed.response;

// The SDK's usual chat loop: the earlier turn's messages sent back, then the next question. With
// store on (its default) it sends the earlier assistant message as an item_reference by id.
const history = [{ role: "user", content: "What is your name?" }, ...generated.response.messages];
let followUpError = null;
let followUp = null;
try {
  followUp = await generateText({ ...options, prompt: undefined, messages: [...history, { role: "user", content: "And then?" }] });
} catch (error) {
  followUpError = String(error);
}

console.log(JSON.stringify({
  text: generated.text,
  finishReason: generated.finishReason,
  usage: generated.usage,
  responseId: generated.response?.id ?? null,
  providerResponseId: generated.providerMetadata?.openai?.responseId ?? null,
  parts,
  deltas,
  streamedText,
  streamedFinishReason: await streamed.finishReason,
  streamedUsage,
  streamedResponseId: streamedResponse?.id ?? null,
  streamError,
  followUpText: followUp?.text ?? null,
  followUpInputTokens: followUp?.usage?.inputTokens ?? null,
  followUpError,
}));
