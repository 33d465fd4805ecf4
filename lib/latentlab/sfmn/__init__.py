"""Study 2 — SFMN: sparse cell-line gates over motif features for EPI on unseen cell lines."""
