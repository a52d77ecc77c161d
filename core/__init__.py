"""Glassbox GPT core: the model, tokenizers, trainer and analysis, with no UI."""
