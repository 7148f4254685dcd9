"""Which backend runs, the base model and its tokenizer, LoRA adapters."""
