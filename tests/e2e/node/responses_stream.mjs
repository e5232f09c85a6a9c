// The Node openai SDK's Responses API against llmserve: one streamed response and one chained
// non-streamed one. Prints one JSON line with what the test checks.
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });

const stream = await client.responses.create({
  model,
  input: "What is your name?",
  stream: true,
  temperature: 0,
  max_output_tokens: 24,
});
const kinds = [];
let text = "";
let final = null;
for await (const event of stream) {
  kinds.push(event.type);
  if (event.type === "response.output_text.delta") text += event.delta;
  if (event.type === "response.completed" || event.type === "response.incomplete") final = event.response;
}
const chained = await client.responses.create({
  model,
  input: "Tell me more.",
  previous_response_id: final.id,
  temperature: 0,
  max_output_tokens: 24,
});
console.log(JSON.stringify({ kinds, text, finalText: final.output_text ?? null, finalId: final.id,
  chainedPrevious: chained.previous_response_id, chainedText: chained.output_text }));
