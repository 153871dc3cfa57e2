#!/usr/bin/env bash
# Regenerates proto/generated/ (TypeScript via ts-proto, driven by buf; runs offline).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf proto/generated
# buf is fetched on demand, not a devDependency: several of its per-platform packages are missing
# from some registries, and `npm ci` then refuses the lockfile. The generated code is committed.
npx --yes @bufbuild/buf@1.75.0 generate
echo "generated: $(find proto/generated -name '*.ts' | tr '\n' ' ')"
