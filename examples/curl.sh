#!/usr/bin/env bash
# llmserve from curl: a chat completion, a token stream, and the seed API with stored history.
#   make serve            # in another terminal
#   bash examples/curl.sh # or LLMSERVE_URL=http://host:port bash examples/curl.sh
set -euo pipefail
URL="${LLMSERVE_URL:-http://127.0.0.1:8888}"
MODEL="${LLMSERVE_MODEL:-tiny-chat}"  # requests without "model" go to the server's default model

echo "== POST /v1/chat/completions"
curl -sS --fail-with-body "$URL/v1/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"model": "'"$MODEL"'", "messages": [{"role": "user", "content": "Hello!"}], "temperature": 0}'
echo

echo "== POST /v1/chat/completions, stream=true (Server-Sent Events; -N prints them as they arrive)"
curl -sS -N --fail-with-body "$URL/v1/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"messages": [{"role": "user", "content": "你好"}], "stream": true, "temperature": 0}'

echo "== POST /chat/new/message/ (the seed API: the exchange is stored)"
reply="$(curl -sS --fail-with-body "$URL/chat/new/message/" \
  -H 'Content-Type: application/json' \
  -d '{"prompt": "What is 2 plus 3?", "max_tokens": 64, "temperature": 0}')"
echo "$reply"
conversation_id="$(printf '%s' "$reply" | python3 -c 'import json, sys; print(json.load(sys.stdin)["conversation_id"])')"

echo "== GET /chat/get/messages/?conversation_id=$conversation_id"
curl -sS --fail-with-body "$URL/chat/get/messages/?conversation_id=$conversation_id"
echo

echo "== GET /chat/stream?prompt=... (what a browser EventSource reads)"
curl -sS -N --fail-with-body -G "$URL/chat/stream" --data-urlencode 'prompt=What is your name?' \
  --data-urlencode 'temperature=0'
