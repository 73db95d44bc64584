"""Training and evaluation: TRL datasets from the trace store, SFT, GRPO with grounding rewards, eval tables."""
