"""Durable schedules: `schedules/<name>.yaml` in the data repo, the `sys-schedules` snapshot
whose signal is the set of schedules that are due, and what a decided beat does to them."""
