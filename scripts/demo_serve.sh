#!/usr/bin/env bash
# The end of `make demo`: voxmill serve on a free loopback port, one speech and one transcription
# request with curl (the server transcribes its own speech), the loaded models (/api/ps), then stop.
# usage: scripts/demo_serve.sh VENV_BIN OUT_DIR
set -euo pipefail
BIN=$1
OUT=$2
PORT=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
"$BIN/voxmill" --quiet serve --port "$PORT" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -sf "$URL/readyz" >/dev/null && break
  kill -0 $PID 2>/dev/null || { echo "voxmill serve did not start" >&2; exit 1; }
  sleep 0.2
done
set -x
curl -sSf "$URL/v1/audio/speech" -H 'Content-Type: application/json' -o "$OUT/served.mp3" \
  -d '{"model": "tts-1", "voice": "alloy", "input": "The mill stood at the bottom of a narrow valley, where the river turned to the east.", "response_format": "mp3"}'
curl -sSf "$URL/v1/audio/transcriptions" -F file=@"$OUT/served.mp3" -F model=whisper-1 -F response_format=json
echo
curl -sSf "$URL/api/ps"
echo
