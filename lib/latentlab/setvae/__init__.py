"""Study 4 — posterior collapse in a hierarchical SetVAE on irregular clinical time series."""
