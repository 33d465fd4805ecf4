"""Named loss terms, one module per study (each returns scalar tensors for train.fit)."""
