#!/usr/bin/env bash
# The retraining entry: check the labelled data, train on it, print the evaluation, and promote
# the new model if it is not worse than the current one on the test file. Extra arguments go to
# `triage train` (e.g. --tolerance 0.005, --candidate word_lr, --no-search).
set -euo pipefail
cd "$(dirname "$0")/.."
triage=${TRIAGE:-.venv/bin/triage}
[ -x "$triage" ] || { make install >/dev/null; }
"$triage" data check training/data/train.jsonl training/data/test.jsonl
exec "$triage" train --data training/data/train.jsonl --test training/data/test.jsonl --promote "$@"
