#!/usr/bin/env bash
# The local date: wakes the loop once a day even when nothing else changes.
# looopbot:interval=300
set -euo pipefail
printf '{"signal": {"date": "%s"}, "detail": {"weekday": "%s"}}\n' "$(date +%F)" "$(date +%A)"
