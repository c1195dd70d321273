#!/bin/sh
# A long job in steps: import a 5,000-row CSV file a chunk per tick, while other
# tasks run between its steps. Run from anywhere: sh examples/steps_demo.sh
# In another terminal, watch it: taskcron --config examples/taskcron.toml status --watch
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tc() { taskcron --config "$here/taskcron.toml" "$@"; }

csv="$here/.taskcron/products.csv"
mkdir -p "$here/.taskcron"
python3 - "$csv" <<'PY'
import csv, sys
with open(sys.argv[1], "w", newline="") as handle:
    out = csv.writer(handle)
    out.writerow(["sku", "name", "price"])
    for n in range(5000):
        out.writerow([f"SKU-{n:05d}", f"product {n}", n % 97])
PY

tc schedule catalog.import --task import-csv --data "{\"path\": \"$csv\"}" --key products
tc schedule billing.invoices --task send_invoice --data '{"invoice": 2001, "customer": 3}'
echo "--- four ticks, a 3-second budget each: the invoice runs between two steps"
for _ in 1 2 3 4; do
    tc tick --budget 3s -v
    tc list --all --module catalog
done
