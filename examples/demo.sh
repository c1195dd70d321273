#!/bin/sh
# Schedule six tasks in the example project and run them the way cron would:
# one `taskcron tick` per due task. Run from anywhere: sh examples/demo.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tc() { taskcron --config "$here/taskcron.toml" "$@"; }

tc schedule billing.invoices --task send_invoice --data '{"invoice": 1001, "customer": 42}'
tc schedule billing.invoices --task send_invoice --data '{"invoice": 1002, "customer": 7}' --priority 5
tc schedule media.images --task resize-images --data '{"images": ["a.png", "b.png"]}'
tc schedule reports --call shop_tasks:nightly_report --title "nightly report"
tc schedule backups --title "disk usage" -- df -h /
# --key makes this idempotent: running the demo again finds the daily report
# already waiting instead of adding a second one.
tc schedule reports.daily --cron "0 6 * * *" --call shop_tasks:nightly_report \
    --title "daily report" --key daily

echo "--- queued:"
tc list
echo "--- five ticks, one due task each (the sixth task is not due before 06:00):"
for _ in 1 2 3 4 5; do tc tick -v; done
echo "--- afterwards (the daily report waits for 06:00):"
tc list --all
echo "--- the last records of the log:"
tc log -n 8
