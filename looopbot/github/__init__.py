"""Everything that talks to GitHub (DESIGN §10); no other module imports github3."""
