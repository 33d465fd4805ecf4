# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] tags=[]
# # Study 4 — Hierarchical SetVAE on irregular clinical time series: posterior collapse
#
# A hierarchical SetVAE encodes each time step's *set* of observations (variable, value) into latents **Z**;
# a causal transformer turns them into history **H**; a head predicts an imbalanced outcome (mortality-style).
# The seed's latent plot showed Z and H on top of each other and read it as **posterior collapse**: the
# transformer carries everything, the latents nothing. The seed then lists fixes (β 0.5 → 0.1, w 0.5 → 1.0,
# free bits 0.2 → 0.1, norm clipping, β warm-up, learned positions + time MLP instead of RoPE, pre-norm,
# attention pooling, variance/mean regularisers, level-wise KL weights, dynamic task weights, label smoothing,
# AdamW with per-module learning rates and a cosine schedule).
#
# **What this notebook does**
# 1. simulates ICU stays with known truth (or loads PhysioNet-2012 / long-CSV data) — irregular times kept exactly,
# 2. trains the seed's **before** configuration and checks it for collapse with measured diagnostics
#    (active units, KL per level and per dimension, mutual information, the Z-vs-H picture per epoch),
# 3. trains the seed's **after** configuration and asks the same question,
# 4. turns **one fix off at a time** (several seeds) to see which fixes matter,
# 5. compares AUROC/AUPRC with logistic regression and gradient boosting on summary statistics and PyPOTS GRU-D.

# %% [markdown] tags=[]
# ## Parameters
#
# `preset` picks a size (`quick` for this committed notebook, `standard` for `make run`, `full` ≈ 4,000 stays).
# Any other name set here overrides the preset; `None` keeps it. Example:
# `papermill notebooks/04_setvae.ipynb out.ipynb -p preset standard -y "seeds: [0, 1]"`;
# your data: `-p data path/to/set-a -p outcomes path/to/Outcomes-a.txt`, or a long CSV
# `-p data events.csv -p outcomes outcome.csv -y "columns: {stay_id: icustay, time: minutes_in, variable: item, value: valuenum}" -p time_unit minutes -p label_column died`
# (README, "Your own data").

# %% tags=["parameters"]
preset = "quick"
seed = None
output_dir = None
data = None  # "simulated", a PhysioNet-2012 set-a directory, a long CSV file, or a directory with observations.csv
outcomes = None  # Outcomes-a.txt (PhysioNet) or the label CSV (long format)
label_column = None  # default In-hospital_death (PhysioNet) / label (long CSV)
columns = None  # long CSV column names, e.g. {"stay_id": "icustay", "time": "minutes_in", "variable": "item", "value": "valuenum"}
time_unit = None  # long CSV time: hours | minutes | seconds | days | hh:mm
unknown_variables = None  # "error" or "drop" (counted)
n_stays = None
max_steps = None  # sets per stay the model reads (the last ones); what is dropped is reported
set_window_minutes = None  # "auto": widen sets until the median stay fits in max_steps; 0: one set per timestamp
epochs = None
min_updates = None  # at least this many optimiser steps per run
seeds = None
ablation = None  # list of fix names (see latentlab.setvae.pipeline.FIXES)
extras = None
references = None  # which of "before (seed)", "after (seed)" to train ([] in sweeps of the ablation)
sweep_results = ""  # a sweep directory or its results.csv (see "Reading a sweep" at the end)
ablation_seeds = None
baselines = None
progress = None
device = None  # "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", "mps"
workers = None  # processes for independent runs: "auto" (this one + the cores make run reports free) or a number

# %% tags=["nbval-check-output"]
import time

import pandas as pd
from IPython.display import Markdown, display

from latentlab.setvae import plots
from latentlab.setvae import pipeline as S

started = time.perf_counter()
params = S.SetVAEParams.from_namespace(globals())
pd.Series(params.to_dict(), name="value").to_frame()

# %% [markdown] tags=[]
# ## 1 · Data
#
# The simulator draws a 3-dimensional latent patient state per stay (baseline + drift over 48 h + an
# Ornstein–Uhlenbeck wander). 36 PhysioNet variables load on it with their own noise; vitals are charted
# together at irregular charting events, labs at sparser draws, each variable with its own observation
# probability and whole-stay missingness. The outcome (~14 % positive) depends on the state at the end of the
# stay and its drift — the *trajectory*, which a model has to read from its latents. Stays are written as
# PhysioNet-2012 files (`Time,Parameter,Value`, `HH:MM`) plus `Outcomes-a.txt` and read back through the
# validated loader. Observations sharing one timestamp form one set = one time step; no rounding to hours.
#
# **How much of each stay the model reads.** The model reads at most `max_steps` sets per stay (the last
# ones). With `set_window_minutes="auto"` timestamps closer than a window join one set, the window widening
# (0, 5, 10, 15, 30, 60, 120, 240 min) until the median stay fits — a set keeps the exact time of its first
# observation. The line printed below says how many sets, stays and observations the cap dropped; it starts
# with WARNING (also written to `metrics.json`) when most observations are dropped.

# %% tags=["nbval-check-output"]
stays = S.load(params)  # not `data`: that name is a parameter
splits = S.make_splits(stays, params)
prep = S.prepare(stays, splits, params)
display(stays.summary())
pd.DataFrame([{"split": k, "stays": len(v), "positives": int(prep.arrays.labels[v].sum())}
              for k, v in vars(splits).items()])

# %% [markdown] tags=[]
# ## 2 · The seed's "before" configuration
#
# β = 0.5 constant, w = 0.5, free bits 0.2, gradient *value* clipping at 1.0, RoPE, post-norm, mean pooling,
# one learning rate (Adam), no regularisers.
#
# **Free bits "per latent group".** The seed gives λ but not the group it applies to. Here a group is one
# latent *level* (max(λ, KL of the level): λ nats per level are free, single dimensions can still be pushed
# onto the prior) — the natural group of a hierarchical VAE. The other reading, λ per *dimension*, leaves 16×
# more nats free and is run as an extra row in the ablation. The reading can decide the headline — whether
# "before" collapses at all — so both rows are reported side by side (this run's numbers: the ablation table).
#
# `train.fit` checks the loss contract first (every weight read by a term, every active term reaching the
# modules it must shape; the free-bits KL is declared *gated*: flat below λ by design, but it must be connected
# to the encoder), then logs every term, its weight and the diagnostics per epoch.

# %% tags=["nbval-ignore-output"]
before = S.run_reference("before (seed)", prep, params)  # every seed; prints each seed's diagnosis

# %% [markdown] tags=[]
# ## 3 · The seed's "after" configuration
#
# β warm-up to 0.1, w = 1.0, free bits 0.1, norm clipping 0.5, learned positions + time MLP, pre-norm,
# attention pooling `w = softmax(Σ h⊙z)`, variance/mean regularisers, deeper levels' KL weighted 2×,
# reconstruction weight 1 → 0.5 and classification 0.5w → w over training, label smoothing 0.1, AdamW with
# the SetVAE at 0.1× the learning rate and a cosine schedule. The seed's "looser causal mask" is **not** part
# of it (it is a leak; see the ablation's extra row).

# %% tags=["nbval-ignore-output"]
after = S.run_reference("after (seed)", prep, params)  # every seed; prints each seed's diagnosis

# %% [markdown] tags=[]
# ### Diagnostics per epoch and the seed's picture
#
# Active-unit ratio (Burda et al.: Var_x(E_q[z_u]) > 0.01), KL per level (nats per time step, *without* free
# bits), linear CKA between Z and H, validation AUROC. Below: Z (red) and H (green) of the same validation
# steps in one 2-D PCA, per epoch — the plot the seed read collapse from. Overlap alone is weak evidence; the
# numbers above it are the test.

# %% tags=["nbval-ignore-output"]
shown = [r.name for r in before[:1] + after[:1]]  # the reference runs this execution trained
history = pd.concat([r.history for r in before + after], ignore_index=True) if shown else None
projections = pd.concat([r.projections for r in before + after], ignore_index=True) if shown else None
chart_diag = plots.diagnostics_over_epochs(history, shown) if shown else None
chart_diag

# %% tags=["nbval-ignore-output"]
chart_zh = plots.zh_projection(projections, shown, seed=params.seeds[0]) if shown else None
chart_zh

# %% [markdown] tags=[]
# ## 4 · Ablation: one fix off at a time
#
# Each row is the "after" configuration with exactly one fix returned to its "before" value
# (`S.ablate(fix)`), on the first `ablation_seeds` seeds; extra rows add an option the seed proposes
# (cyclical KL annealing, staged training, the leaky causal mask), the **other free-bits reading** (λ per
# dimension) for both "before" and "after", and two **controls** built on "before": a decoder that reads only
# the history h_{t-1} (reconstruction never rewards z_t directly; z still reaches H and the classifier), and
# "before" with no free bits at all (nothing protects the latents from β = 0.5).
# `collapsed_seeds` counts seeds the
# automatic diagnosis called collapsed. `auroc_24h` is the prediction made from the first 24 h only — the
# leaky mask lets steps after 24 h reach it.

# %% tags=["nbval-ignore-output"]
ablation_runs = S.run_many(S.ablation_configs(params.ablation, params.extras), prep, params,
                           params.seeds[: params.ablation_seeds])
results = before + after + ablation_runs
rows = pd.DataFrame([S.result_row(r) for r in results])
agg = S.aggregate(rows)
agg.round(3)

# %% tags=["nbval-ignore-output"]
chart_ablation = plots.ablation_chart(agg)
chart_ablation

# %% tags=["nbval-ignore-output"]
per_dim = S.per_dim_kl(results)
chart_kl = plots.kl_per_dim_chart(per_dim)
chart_kl

# %% [markdown] tags=[]
# ## 5 · Against the baselines
#
# Same train/validation/test stays. Logistic regression and gradient boosting read per-variable summary
# statistics (last, mean, min, max, count) — strong on PhysioNet 2012. PyPOTS 1.5 GRU-D is a published
# irregular-time-series classifier; it needs a regular grid, so it gets the values binned to hours (its
# limitation, not the data's). Published PhysioNet-2012 AUROCs for orientation: GRU-D ~0.82, mTAND ~0.84,
# Raindrop ~0.83 — on real data, not on this simulator.

# %% tags=["nbval-ignore-output"]
base = S.baselines(stays, prep, params)
scores = S.scores_table(agg, base)
scores.round(3)

# %% tags=["nbval-ignore-output"]
base_rate = float(prep.arrays.labels[splits.test].mean())
chart_scores = plots.scores_chart(scores, base_rate)
chart_scores

# %% [markdown] tags=[]
# ## 6 · Conclusions (computed from this run's numbers)
#
# Each line below is built from the tables above: the data kept, each reference's collapse verdict and
# whether it *learned* (training AUROC against the chance band — a model at chance is underfitting, and no
# dropout helps it), the comparison with the baselines, and which one-fix-off rows changed collapse. A
# comparison with one seed, or with overlapping seeds, says "not resolved".

# %% tags=["nbval-ignore-output"]
lines = S.conclusions(agg, base, prep)
display(Markdown("\n".join(f"- {line}" for line in lines)))

# %% [markdown] tags=[]
# ## 7 · Results on disk
#
# `metrics.json` (parameters, before/after means over seeds, baselines), one CSV per table, every chart as
# PNG + HTML, and `history.csv` (every loss term, its weight and each diagnostic per epoch and run).

# %% tags=["nbval-ignore-output"]
metrics = S.summary_metrics(rows, base, stays, prep)
metrics["conclusions"] = lines
metrics["seconds"] = time.perf_counter() - started
out = S.write_outputs(
    params, metrics=metrics,
    tables={"runs": rows, "ablation": agg, "scores": scores, "kl_per_dim": per_dim,
            "diagnosis": pd.DataFrame([{"run": r.name, "seed": r.seed, "diagnosis": str(r.diagnosis)} for r in results])},
    charts={name: chart for name, chart in {"diagnostics": chart_diag, "zh_projection": chart_zh,
            "ablation": chart_ablation, "kl_per_dim": chart_kl, "scores": chart_scores}.items() if chart is not None},
    history=pd.concat([r.history for r in results], ignore_index=True),
)
print(sorted(p.name for p in out.iterdir() if not p.name.startswith(".")))
print(f"total {metrics['seconds']:.1f} s")

# %% [markdown] tags=[]
# ## Reading a sweep
#
# The ablation above uses `ablation_seeds` seeds per row. For more, run it as a sweep — one grid point per
# fix and seed, without the reference runs or baselines, on Dask:
# `latentlab sweep notebooks/04_setvae.ipynb --grid params/setvae.yaml` (or `make sweep`)
# writes `runs/sweeps/setvae/results.csv` (each point's `metrics.json` carries `run.name`,
# `run.active_ratio`, `run.kl_total`, `run.auroc`, `run.collapsed_share`, ...). Rerun this notebook with
# `-p sweep_results runs/sweeps/setvae` and this section reads that table through the validated
# loader and shows each configuration's diagnostics and AUROC, mean ± sd over the sweep's seeds (there the
# seed also redraws the simulated stays and the split). With `sweep_results` empty it only says how to make one.

# %% tags=["nbval-check-output"]
from latentlab.sweep.notebook import show_sweep

swept_summary = show_sweep(params.sweep_results, study=S.SetVAEParams, notebook="04_setvae.ipynb",
                           grid="params/setvae.yaml", summarise=S.sweep_ablation, table=S.sweep_table,
                           x="configuration", title="Sweep: one fix off at a time, mean ± sd over seeds")
