"""Study 3 — reconstruction-loss ablation in a BERT+RAG genotype imputer."""
