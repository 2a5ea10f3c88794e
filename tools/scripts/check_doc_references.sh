#!/usr/bin/env bash
# Keeps the learners' guides true to the code (CTest: docs/references). In each page, outside fenced code
# blocks: every link target and every `path/with.ext` in code marks must exist, and every name in code
# marks that is a link's text ([`name`](file)) or follows a link ([file](path) `name`, `other`) must
# occur in that file: literally, or for `A::B` with each of A and B as a whole word.
# Usage: check_doc_references.sh [PAGE.md ...] (default: the walkthrough, adding-an-op and the kernel lab's
# README). Exit 1 on any miss.
set -euo pipefail
cd "$(dirname "$0")/../.."

pages=("$@")
[ ${#pages[@]} -gt 0 ] || pages=(docs/walkthrough.md docs/adding-an-op.md tools/kernel_lab/README.md)

# One reference per line, tab-separated: PATH page:line path | LINK page:line target | NAME page:line target name.
references() {
  awk -v page="$1" '
    function is_path(s) {
      return s ~ /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+\/?$/ && (s ~ /\/$/ || s ~ /\.[A-Za-z]+$/)
    }
    /^[ \t]*```/ { fenced = !fenced; next }
    fenced { next }
    {
      where = page ":" NR
      rest = $0
      while (match(rest, /`[^`]+`/)) {
        span = substr(rest, RSTART + 1, RLENGTH - 2)
        if (is_path(span)) print "PATH\t" where "\t" span
        rest = substr(rest, RSTART + RLENGTH)
      }
      rest = $0
      while (match(rest, /\[[^]]*\]\([^)]*\)/)) {
        link = substr(rest, RSTART, RLENGTH)
        rest = substr(rest, RSTART + RLENGTH)
        text = link
        sub(/\]\(.*$/, "", text)
        text = substr(text, 2)
        target = link
        sub(/^\[[^]]*\]\(/, "", target)
        sub(/\)$/, "", target)
        if (target ~ /^(https?:|mailto:|#)/) continue
        sub(/#.*$/, "", target)
        print "LINK\t" where "\t" target
        if (text ~ /^`[^`]+`$/) {
          name = substr(text, 2, length(text) - 2)
          if (!is_path(name)) print "NAME\t" where "\t" target "\t" name
        }
        tail = rest
        while (match(tail, /^([ \t]*:?[ \t]*|[ \t]*,[ \t]*|[ \t]+and[ \t]+)`[^`]+`/)) {
          name = substr(tail, RSTART, RLENGTH)
          sub(/^[^`]*`/, "", name)
          sub(/`$/, "", name)
          if (!is_path(name)) print "NAME\t" where "\t" target "\t" name
          tail = substr(tail, RSTART + RLENGTH)
        }
      }
    }' "$1"
}

# Whether `name` (a trailing argument list dropped) occurs in `file`.
name_occurs() {
  local file=$1 name=${2%%(*}
  grep -qF -- "$name" "$file" && return 0
  [[ $name == *::* ]] || return 1
  local part
  for part in ${name//::/ }; do grep -qw -- "$part" "$file" || return 1; done
}

status=0 files=0 names=0
miss() {
  echo "doc references: $1"
  status=1
}
for page in "${pages[@]}"; do
  [ -f "$page" ] || { miss "$page: no such page"; continue; }
  dir=$(dirname "$page")
  while IFS=$'\t' read -r kind where target name; do
    case $kind in
      PATH)
        files=$((files + 1))
        [ -e "$target" ] || miss "$where: \`$target\` does not exist"
        ;;
      LINK | NAME)
        resolved=$(realpath -m --relative-to=. "$dir/$target")
        if [ "$kind" = LINK ]; then
          files=$((files + 1))
          if [[ $resolved == ../* ]]; then
            miss "$where: link ($target) leaves the repository"
          elif [ ! -e "$resolved" ]; then
            miss "$where: link ($target) to $resolved, which does not exist"
          fi
        elif [ -f "$resolved" ]; then
          names=$((names + 1))
          name_occurs "$resolved" "$name" || miss "$where: \`$name\` does not occur in $resolved"
        fi
        ;;
    esac
  done < <(references "$page")
done
[ "$status" -eq 0 ] && echo "doc references: ${pages[*]}: $files paths and $names names, all found"
exit "$status"
