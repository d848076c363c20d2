#!/bin/sh
# Validates every JSON Schema in schemas/ and its own examples with ajv (and, optionally, encoder samples).
#
# Usage: scripts/validate-schema-examples.sh [--samples DIR] [SCHEMA_DIR]
#
# For each SCHEMA_DIR/*.schema.json (default: the repository's schemas/) it
# checks that the schema has a "$id", an "examples" array that is not empty,
# and a "description" on every property it declares, then validates each
# example against the schema with ajv (draft 2020-12, ajv-formats for
# "date-time"). With --samples DIR it also validates every DIR/NAME--*.json
# against SCHEMA_DIR/NAME.schema.json: test_encode writes such samples of
# each encoder's output to BUILD_DIR/encode-samples.
#
# Needs node, python3 and ajv-cli with ajv-formats on the PATH:
#     npm install -g ajv-cli@5.0.0 ajv-formats@2.1.1
# Exit 0 when everything validates, 1 on any failure, 2 on a usage error or
# a missing tool.
set -u

here=$(cd "$(dirname "$0")" && pwd)
samples=
schema_dir=$here/../schemas

while [ $# -gt 0 ]; do
	case $1 in
	--samples)
		[ $# -ge 2 ] || { echo "usage: $0 [--samples DIR] [SCHEMA_DIR]" >&2; exit 2; }
		samples=$2
		shift 2
		;;
	-h | --help)
		sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		echo "usage: $0 [--samples DIR] [SCHEMA_DIR]" >&2
		exit 2
		;;
	*)
		schema_dir=$1
		shift
		;;
	esac
done

for tool in ajv python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "$0: $tool not found (npm install -g ajv-cli@5.0.0 ajv-formats@2.1.1)" >&2
		exit 2
	fi
done

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

failures=0
checked=0

# ajv_check SCHEMA DATA: validates one file, prints ajv's errors on failure.
# ajv runs with its default strictness, as subscribers would run it; its
# "strict mode" notes (loose but valid schema constructs) are shown as warnings.
# The schemas SCHEMA refers to ("other.schema.json#...") are loaded with -r.
ajv_check() {
	refs=
	for ref in $(grep -o '"[a-z0-9-]*\.schema\.json#' "$1" | tr -d '"#' | sort -u); do
		refs="$refs -r $(dirname "$1")/$ref"
	done
	# shellcheck disable=SC2086 # $refs is a list of options
	if out=$(ajv validate --spec=draft2020 -c ajv-formats --all-errors -s "$1" $refs -d "$2" 2>&1); then
		checked=$((checked + 1))
		printf '%s\n' "$out" | grep 'strict mode' | sort -u | sed "s|^|WARNING: $1: |" >&2
	else
		echo "FAIL: $2 against $1:" >&2
		printf '%s\n' "$out" >&2
		failures=$((failures + 1))
	fi
}

found=0
for schema in "$schema_dir"/*.schema.json; do
	[ -e "$schema" ] || continue
	found=1
	name=$(basename "$schema" .schema.json)
	# Lint the schema and write its examples to $tmp/NAME.N.json, one per file.
	if ! python3 - "$schema" "$tmp/$name" <<'EOF'; then
import json, sys

path, prefix = sys.argv[1], sys.argv[2]
problems = []
try:
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
except (OSError, ValueError) as e:
    print(f"{path}: not readable JSON: {e}", file=sys.stderr)
    sys.exit(1)

if not isinstance(schema.get("$id"), str):
    problems.append("no $id")
examples = schema.get("examples")
if not isinstance(examples, list) or not examples:
    problems.append("no examples")
    examples = []


# Subschemas under these keywords only refine properties declared elsewhere.
REFINING = {"if", "then", "else", "not", "contains", "dependentSchemas"}


def walk(node, pointer, refining):
    """Finds declared properties that have no description."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and not refining and "$ref" not in node:
            for key, sub in props.items():
                # true and false subschemas declare nothing new.
                if isinstance(sub, dict) and "description" not in sub:
                    problems.append(f"{pointer}/properties/{key}: no description")
        for key, sub in node.items():
            if key not in ("examples", "const", "enum", "default"):
                walk(sub, f"{pointer}/{key}", refining or key in REFINING)
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            walk(sub, f"{pointer}/{i}", refining)


walk(schema, "", False)
for i, example in enumerate(examples):
    with open(f"{prefix}.{i}.json", "w", encoding="utf-8") as f:
        json.dump(example, f)
for p in problems:
    print(f"{path}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
		failures=$((failures + 1))
	fi
	for example in "$tmp/$name".*.json; do
		[ -e "$example" ] || continue
		ajv_check "$schema" "$example"
	done
done
if [ "$found" = 0 ]; then
	echo "$0: no *.schema.json in $schema_dir" >&2
	exit 2
fi

if [ -n "$samples" ]; then
	n=0
	for sample in "$samples"/*--*.json; do
		[ -e "$sample" ] || continue
		n=$((n + 1))
		name=$(basename "$sample")
		name=${name%%--*}
		if [ -e "$schema_dir/$name.schema.json" ]; then
			ajv_check "$schema_dir/$name.schema.json" "$sample"
		else
			echo "FAIL: $sample: no schema $name.schema.json" >&2
			failures=$((failures + 1))
		fi
	done
	if [ "$n" = 0 ]; then
		echo "FAIL: no samples in $samples (run test_encode first)" >&2
		failures=$((failures + 1))
	fi
fi

echo "schemas: $checked passed, $failures failed"
[ "$failures" = 0 ]
