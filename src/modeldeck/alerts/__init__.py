"""Alert rules, their evaluation and webhook delivery."""
