"""Workers in git worktrees, with branches as leases (DESIGN §8)."""
