#!/bin/bash
# Fails when an include points up the layers of the tree. The product's
# folders, lowest first:
#   base  <  drivers, store, uplink  <  gateway
# A file may include its own folder and the folders below it; drivers, store
# and uplink are side by side and never include each other. Every include of
# the product names its folder ("store/outbox.h"), so this is the whole graph.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

rank() {
	case $1 in
	base) echo 0 ;;
	drivers | store | uplink) echo 1 ;;
	gateway) echo 2 ;;
	*) echo -1 ;;
	esac
}

bad=0
while IFS= read -r file; do
	from=${file%%/*}
	while IFS= read -r inc; do
		to=${inc%%/*}
		[[ $inc == */* ]] || {
			echo "$file: #include \"$inc\" does not name its folder"
			bad=1
			continue
		}
		r_to=$(rank "$to")
		((r_to >= 0)) || continue
		if ((r_to > $(rank "$from"))) || { ((r_to == $(rank "$from"))) && [[ $to != "$from" ]]; }; then
			echo "$file: #include \"$inc\" points from $from/ to $to/, which is not below it"
			bad=1
		fi
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$file")
done < <(find base drivers store uplink gateway -name '*.[ch]' | sort)
((bad == 0)) || exit 1
echo "layers: every include points down"
