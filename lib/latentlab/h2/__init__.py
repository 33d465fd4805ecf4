"""Study 1 — context leakage in unsupervised scRNA-seq embeddings: data, model, losses, probes, pipeline, plots."""
