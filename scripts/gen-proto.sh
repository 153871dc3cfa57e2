#!/usr/bin/env bash
# Regenerates proto/generated/ (TypeScript via ts-proto, driven by buf; runs offline).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf proto/generated
npx buf generate
echo "generated: $(find proto/generated -name '*.ts' | tr '\n' ' ')"
