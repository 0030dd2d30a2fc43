"""netembed: network embeddings learned from input-gradients (see DESIGN.md)."""
