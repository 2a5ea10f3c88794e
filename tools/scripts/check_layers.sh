#!/usr/bin/env bash
# Checks the include direction tools -> train -> models -> engine -> kernels: each folder may include only
# from the folders below it (and kernels/ only from itself). Prints every offending include; exit 1 if any.
set -euo pipefail
cd "$(dirname "$0")/../.."

# folder: the project folders its files may include from
declare -A allowed=(
  [kernels]="kernels"
  [engine]="engine kernels"
  [models]="models engine"
  [train]="train models engine"
)
status=0
for folder in kernels engine models train; do
  pattern=$(printf '%s|' ${allowed[$folder]})
  pattern=${pattern%|}
  while IFS= read -r line; do
    echo "layering: $line  ($folder/ may include only from: ${allowed[$folder]})"
    status=1
  done < <(grep -rnE '^\s*#\s*include\s+"[a-z_]+/' "$folder" --include='*.h' --include='*.cpp' --include='*.cu' \
             | grep -vE "#\s*include\s+\"($pattern)/" || true)
done
[ "$status" -eq 0 ] && echo "layering: tools -> train -> models -> engine -> kernels, no include against the direction"
exit "$status"
