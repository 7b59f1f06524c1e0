"""Step-by-step inspection: stages, figures, weight statistics."""
