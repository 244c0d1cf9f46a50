#!/usr/bin/env bash
# The layers' dependency rule, checked on the sources: core <- parallel <- train <- cli. A file
# may include project headers (spelled "longnet/<layer>/x.h") of its own layer and of the layers
# below it only (and the generated longnet/longnet_build_info.h); anything else is reported with
# file:line and the rule, as is a project header without the longnet/ prefix.
#   tests/check_layers.sh SOURCE_ROOT
set -uo pipefail
ROOT=${1:-.}
cd "$ROOT" || exit 2
declare -A allowed=(
  [core]="core"
  [parallel]="core parallel"
  [train]="core parallel train"
  [cli]="core parallel train cli"
)
bad=0
for layer in core parallel train cli; do
  [[ -d $layer ]] || { echo "check_layers: no folder $layer/ in $ROOT" >&2; exit 2; }
  while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    target=$(sed -E 's/.*#[[:space:]]*include[[:space:]]*["<]([^">]+)[">].*/\1/' <<< "${rest#*:}")
    if [[ $target != longnet/* ]]; then
      echo "include without the prefix: $file:$line includes \"$target\" (write \"longnet/$target\")"
      bad=$((bad + 1))
      continue
    fi
    path=${target#longnet/}
    top=${path%%/*}
    if [[ " ${allowed[$layer]} " != *" $top "* ]]; then
      echo "layer violation: $file:$line includes \"$target\" ($layer/ may include only: ${allowed[$layer]})"
      bad=$((bad + 1))
    fi
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*["<](longnet/)?(core|parallel|train|cli|tests|bench)/' \
             "$layer" --include='*.h' --include='*.cpp' --include='*.cu' --include='*.cuh')
done
if ((bad)); then
  echo "check_layers: $bad include(s) point upward or lack the longnet/ prefix"
  exit 1
fi
echo "check_layers: OK (core <- parallel <- train <- cli)"
