"""Training recipes: one short, readable file per method."""
