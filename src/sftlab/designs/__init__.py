"""Two-level factorial designs over the prompt's components (full, fractional, Taguchi)."""
