# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown] tags=[]
# # Study 3 — Does the reconstruction loss help a BERT + RAG genotype imputer?
#
# A transformer imputes masked alleles on both haplotypes of an individual, helped by reference-panel haplotypes
# retrieved for each window (RAG): the k panel haplotypes with the longest exact match to the individual's typed
# markers around the window (the quantity positional BWT reports), each with how far that match reaches left and
# right of every site. It also reads, at every site, P(ALT) from a Li–Stephens copying model of the haplotype
# over the whole panel (the model behind Beagle and IMPUTE; `lshmm`), as an input and as a residual on its
# allele logit. As found, its loss adds a **reconstruction** term
#
# `recon_k = MSE(hap_k_before[mask], hap_k_after[mask])`
#
# that pulls the fused representation (after 8 transformer layers and RAG cross-attention) back towards the
# **initial embedding of the masked input** — at masked sites that is just the `MASK` token's embedding. A
# threshold switch (`MIN_RECON_LOSS = 0.01`) flips between `0.2·h1 + 0.2·h2 + 0.3·gt + 0.15·r1 + 0.15·r2` and
# `3·h1 + 3·h2 + 4·gt`, and every task term is a focal loss with γ = 5.
#
# **The seed's argument** (seed 002): the recon target is meaningless (it reconstructs the mask), it fights the
# task gradient (their cosine should be negative), it takes 30 % of the loss weight, the switch changes the
# loss scale 10× and should make training oscillate (or never fire, since the threshold is tiny), and γ = 5
# ignores ~97 % of positions. It proposes an ablation — A (as found), B (recon weight 0.05), C (no recon),
# D (recon towards the embedding of the **true** alleles), E (InfoNCE between the two haplotypes of a person) —
# crossed with γ ∈ {5, 2.5}, and predicts **C > D > B > A** (overall F1 0.74 / 0.73 / 0.72 / 0.70).
#
# This notebook runs that ablation and measures, rather than argues, each claim: accuracy per MAF bin,
# convergence, stability, switch counts, the recon/hap ratio, the gradient cosine and the focal utilisation.
# Beagle 5.4 on the same panel and targets is the external anchor.

# %% [markdown] tags=[]
# ## Parameters
#
# `preset` picks a size: `quick` (this committed notebook; small data, 1 seed, both γ only for arms A and C),
# `standard` (`make run`: 1 Mb, every arm × both γ × 3 seeds), `full` (larger panel, the seed's 8 layers).
# `None` keeps the preset's value. Example:
# `papermill notebooks/03_recon.ipynb out.ipynb -p preset standard -p depth 8 -p n_seeds 5`.
# `data` may name a directory with `panel.vcf`, `targets.vcf` (array sites only) and `truth.vcf`.
# `retrieval` is `"match"` (longest exact match on typed markers within `flank_bp` of the window) or `"hamming"`
# (the seed's rule: Hamming on the window's own typed sites); `use_match = False` gives the seed's model, which
# reads one distance per retrieved segment instead of per-site match extents; `use_copying = False` removes the
# Li–Stephens copying posterior from the network's inputs (`copying_ne`: its effective population size, Beagle's
# default 100,000). List parameters (`arms`, `gammas`,
# `gamma_arms`) can be given to papermill as JSON text (`-p arms '["C"]'`) or as YAML (`-y "arms: [C]"`).

# %% tags=["parameters"]
preset = "quick"
seed = None
output_dir = None
data = None  # "simulated" or a directory with panel.vcf / targets.vcf / truth.vcf
n_panel = None
n_target = None
length_bp = None
array_fraction = None
window = None
k = None
retrieval = None  # "match" (longest match on typed markers in the flank) or "hamming" (the seed's)
flank_bp = None
use_match = None
use_copying = None  # the network reads the Li–Stephens copying model's P(ALT) per site
copying_ne = None
d_model = None
depth = None
epochs = None
arms = None
gammas = None
gamma_arms = None
n_seeds = None
beagle = None
progress = None
device = None  # "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", "mps"
sweep_results = ""  # a sweep directory or its results.csv (see "Reading a sweep" at the end)

# %% tags=["nbval-check-output"]
import time

import pandas as pd
from IPython.display import Markdown, display

from latentlab.recon import plots as rplots
from latentlab.recon import pipeline as recon

started = time.perf_counter()
params = recon.ReconParams.from_namespace(globals())
pd.Series(params.to_dict(), name="value").astype(str).to_frame()

# %% [markdown] tags=[]
# ## 1 · Data: a reference panel and array-genotyped targets
#
# Human-like haplotypes from a coalescent simulation (stdpopsim `HomSap` / `OutOfAfrica_3G09`, population CEU,
# the contig's flat recombination rate — runs offline), biallelic sites only, VCF positions `floor(pos) + 1`,
# made unique. Individuals are split into a reference panel and disjoint targets; sites monomorphic in the panel
# are dropped (nothing can impute them). Targets are observed only at an "array": a random share of the sites
# that are common (MAF ≥ 0.05) in the panel; everything else is masked and scored. Panel, targets (array
# sites only) and truth are written as phased VCFs and read back with cyvcf2 through the validated loader —
# Beagle reads the very same files.

# %% tags=["nbval-check-output"]
genotypes, paths = recon.load(params)  # not `data`: that name is a parameter
recon.data_summary(genotypes)

# %% [markdown] tags=[]
# Training uses the panel itself: panel individuals (minus a validation share) are masked exactly like the
# targets and retrieve k panel haplotypes **excluding their own two**. Targets are the test set, retrieving from
# the whole panel.

# %% tags=["nbval-check-output"]
prep = recon.prepare(genotypes, params)
pd.DataFrame({"split": ["train", "validation", "test (targets)"],
              "windows": [len(prep.train), len(prep.val), len(prep.test)]})

# %% [markdown] tags=[]
# ### What retrieval hands the network
#
# The same k, the same windows, no network: each masked allele is the majority of the k retrieved haplotypes.
# The seed's rule (Hamming distance on the typed sites inside one window — often only a few) against the
# longest exact match on the typed markers of a wide flank around the window. Whatever the network adds is
# measured against the row this run uses.

# %% tags=["nbval-ignore-output"]
recon.retrieval_comparison(prep, params).round(3)

# %% [markdown] tags=[]
# ## 2 · The ablation
#
# Every run goes through `latentlab.train.fit`: before the first step the loss contract checks that every
# configured weight is read by a loss term and that every active term sends gradient to both the transformer
# and the RAG fusion. Arm A's switch is a set of weight functions reading that step's term values, so the
# weights in the history are the ones actually used, and every switch is recorded. Early stopping on the
# validation ALT-F1 restores the best epoch. Each epoch also measures, on a fixed training batch, the cosine
# between the task gradient and the auxiliary-term gradient (on `hap_after` and on the shared weights) and the
# focal utilisation at both γ.

# %% tags=["nbval-ignore-output"]
runs = recon.run_ablation(prep, params)
history = pd.concat([r.history for r in runs], ignore_index=True)
beagle_run = recon.run_beagle(paths, prep, params.output_path / "beagle") if params.beagle else {
    "available": False, "reason": "beagle switched off (beagle=False)"}  # not `beagle`: a parameter
print("Beagle:", f"ran in {beagle_run['seconds']:.1f} s" if beagle_run["available"] else beagle_run["reason"])
vote, wvote = recon.retrieval_vote(prep), recon.retrieval_vote(prep, weighted=True)
copying_alone = recon.copying_vote(prep)
table = recon.ablation_table(runs, beagle_run, vote, wvote, copying_alone)
summary = recon.summary_table(table)
print(f"{len(runs)} runs:", ", ".join(f"{r.arm}/γ{r.gamma:g}/s{r.seed}" for r in runs))

# %% [markdown] tags=[]
# ### Ablation table (masked sites of the targets; mean ± sd over seeds)
#
# `RAG k-vote (no model)` is the retrieval alone — P(ALT) = share of the k retrieved panel haplotypes carrying
# ALT — i.e. what retrieval hands the network before any loss acts; `RAG match-weighted vote` weights each retrieved
# haplotype by how far its match reaches at that site (a hand-made rule the network could learn);
# `Li–Stephens copying model (no network)` scores the copying posterior the network reads, so the arms' rows show
# what the network adds to it (or loses). ALT-allele F1
# counts ALT alleles per genotype (phase-free, so Beagle's rephasing costs it nothing); rare = panel MAF < 0.05.
# Dosage r² is shown two ways: pooled over (site, individual) within a MAF bin, and `r2_site_mean`, the mean over
# sites of each site's r² across the targets (how Beagle users read r²). Concordance is genotype-level, which
# hides rare-variant errors — hence the F1 and r² columns.

# %% tags=["nbval-ignore-output"]
recon.display_table(summary)

# %% tags=["nbval-ignore-output"]
dosage_files = recon.write_dosages(runs, genotypes, params.output_path / "dosages")
print(f"{len(dosage_files)} dosage VCF(s) (GT:DS:AP1:AP2 per target and panel site) in {params.output_path / 'dosages'}")

# %% tags=["nbval-ignore-output"]
rplots.f1_by_arm(table)

# %% tags=["nbval-ignore-output"]
rplots.r2_by_maf(table)

# %% [markdown] tags=[]
# ## 3 · Convergence, stability and the switch
#
# Training loss is the *weighted* total: arm A's switch to `3·h1 + 3·h2 + 4·gt` would show as a 10× jump.
# `task_loss` is the unweighted `h1 + h2 + gt`, comparable across arms.

# %% tags=["nbval-ignore-output"]
rplots.learning_curves(history)

# %% tags=["nbval-ignore-output"]
rplots.switch_timeline(history) if (history["arm"] == "A").any() else "arm A not run"

# %% tags=["nbval-ignore-output"]
stability_cols = ["arm", "gamma", "seed", "best_epoch", "seconds_to_best", "epochs_run", "loss_std_last",
                  "task_loss_std_last", "max_loss_jump", "switches", "share_steps_recon_on", "train_val_gap"]
table[~table["arm"].isin(recon.REFERENCES)][stability_cols].round(4)

# %% [markdown] tags=[]
# ## 4 · The seed's monitors, measured
#
# **Recon/hap ratio** (per step, `recon1 / hap1`) with the seed's rule: > 1 recon dominates, < 0.1 negligible.
# **Gradient conflict**: cosine between the task gradient and the auxiliary gradient — negative means they pull
# apart, as the seed claims; `aux_share` is the auxiliary term's share of the update norm on the shared weights
# at the arm's actual weights (arm C: the seed's recon it no longer trains, share 0).

# %% tags=["nbval-ignore-output"]
monitor_cols = ["arm", "gamma", "seed", "recon_hap_ratio", "ratio_rule", "cos_hap_after", "cos_shared",
                "aux_share", "util_final"]
table[~table["arm"].isin(recon.REFERENCES)][monitor_cols].round(3)

# %% tags=["nbval-ignore-output"]
rplots.conflict_curves(history)

# %% [markdown] tags=[]
# **Focal data utilisation**: the share of labelled positions whose focal weight `(1 − p_t)^γ` exceeds
# `util_threshold`, measured on the same model at both γ (so the columns isolate the effect of γ itself).

# %% tags=["nbval-ignore-output"]
rplots.utilisation_curves(history)

# %% [markdown] tags=[]
# ## 5 · Verdict on the seed's prediction, and the Beagle anchor

# %% tags=["nbval-ignore-output"]
verdicts = {f"gamma={g:g}": recon.verdict(summary, g) for g in params.gammas}
gap = recon.beagle_gap(summary)
display(pd.DataFrame(verdicts).T)
pd.Series(gap, name="best arm vs Beagle 5.4").to_frame() if gap.get("beagle") else beagle_run.get("reason")

# %% tags=["nbval-ignore-output"]
seed_pred = pd.DataFrame(recon.SEED_PREDICTION, index=["seed: overall F1", "seed: rare F1"]).T
measured = summary[summary["gamma"] == params.gammas[0]].set_index("arm")[["f1_overall_mean", "f1_rare_mean"]]
seed_pred.join(measured.rename(columns={"f1_overall_mean": "measured overall", "f1_rare_mean": "measured rare"}),
               how="outer").round(3)

# %% [markdown] tags=[]
# ## 6 · Save everything (atomic writes into `output_dir`)

# %% tags=["nbval-ignore-output"]
charts = {"f1_by_arm": rplots.f1_by_arm(table), "r2_by_maf": rplots.r2_by_maf(table),
          "learning_curves": rplots.learning_curves(history), "conflict": rplots.conflict_curves(history),
          "utilisation": rplots.utilisation_curves(history)}
if (history["arm"] == "A").any():
    charts["switch_timeline"] = rplots.switch_timeline(history)
findings = recon.conclusions(table, verdicts, gap)
switches = pd.DataFrame([{**s, "gamma": r.gamma, "seed": r.seed} for r in runs for s in r.switches])
metrics = {"verdicts": verdicts, "beagle_gap": gap, "conclusions": findings, "beagle": {key: value for key, value in beagle_run.items() if key != "metrics"},
           "runs": [f"{r.arm}/{r.gamma:g}/{r.seed}" for r in runs], "summary": summary.to_dict("records"),
           "seconds": time.perf_counter() - started}
if (point := recon.point_metrics(summary)) is not None:  # one arm at one γ (a sweep point): run.* columns
    metrics["run"] = point
out = recon.write_outputs(params, metrics=metrics, tables={"ablation": table, "summary": summary,
                                                           "switches": switches}, charts=charts, history=history)
print(f"wrote {params.output_dir} in {metrics['seconds']:.0f} s total")

# %% [markdown] tags=[]
# ## Conclusions
#
# Computed from this run's numbers by `recon.conclusions` (also in `metrics.json`): the measured ranking of the
# arms against the seed's prediction — "not tested" unless at least 2 arms ran on at least 2 seeds each, so the
# seed-to-seed spread can be compared with the differences — whether arm A's switch fired, the sign of the
# gradient cosine between recon and the task, the recon/hap monitor, the focal utilisation at each γ, what the
# retrieval and the copying model alone score (and whether the best arm's difference from the copying model
# exceeds its seed noise), and the best arm against the k-vote and Beagle 5.4 bars.

# %% tags=["nbval-ignore-output"]
display(Markdown("\n".join(f"- {line}" for line in findings)))

# %% [markdown] tags=[]
# ## Reading a sweep
#
# A sweep runs this notebook once per grid point — one arm at one γ and one seed each — on Dask:
# `latentlab sweep notebooks/03_recon.ipynb --grid params/recon.yaml` (or `make sweep`) writes
# `runs/sweeps/recon/results.csv` (one row per point; each point's `metrics.json` carries `run.arm`,
# `run.gamma`, `run.f1_rare`, ...). Rerun this notebook with `-p sweep_results runs/sweeps/recon` and
# this section reads that table through the validated loader and shows arms × γ with rare- and common-variant
# ALT-F1, mean ± sd over the sweep's seeds. With `sweep_results` empty (the default) it only says how to make one.

# %% tags=["nbval-check-output"]
from latentlab.sweep.notebook import show_sweep

swept_summary = show_sweep(params.sweep_results, study=recon.ReconParams, notebook="03_recon.ipynb",
                           grid="params/recon.yaml", summarise=recon.sweep_summary,
                           table=recon.sweep_table, x="arm", color="gamma",
                           title="Sweep: ALT-F1 per arm and γ, mean ± sd over seeds")
