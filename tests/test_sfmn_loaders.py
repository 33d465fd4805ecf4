"""Study 2 loaders on real formats: what they read, and every bad input named by file and line/record/column.

Each bad-input test asserts the error type (``epi.DataError``) *and* that the message names the file and
the record, line or column, so an error that names nothing fails the test.
"""

from __future__ import annotations

import gzip
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from latentlab.sfmn import data as epi

COORD_HEADER = "cell_line\tlabel\tenhancer_chrom\tenhancer_start\tenhancer_end\tpromoter_chrom\tpromoter_start\tpromoter_end"
GENOME = {"chr1": "ACGTTGCA" * 30, "chr2": "GGGCCCAATT" * 20}  # 240 bp, 200 bp


def write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def genome_file(tmp_path, contigs=GENOME, name="genome.fa"):
    return write(tmp_path / name, "".join(f">{c}\n{s}\n" for c, s in contigs.items()))


def coord_pairs(tmp_path, rows, name="pairs.tsv"):
    return write(tmp_path / name, COORD_HEADER + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))


GOOD_ROWS = [("A", 1, "chr1", 0, 60, "chr2", 10, 50), ("A", 0, "chr1", 100, 180, "chr2", 100, 150),
             ("B", 1, "chr1", 0, 60, "chr2", 100, 150), ("B", 0, "chr1", 100, 180, "chr2", 10, 50)]


def named_pairs(tmp_path, rows="e1,p1,A,1\ne2,p1,A,0\n", name="pairs.csv"):
    return write(tmp_path / name, "enhancer,promoter,cell_line,label\n" + rows)


def named_fasta(tmp_path, text=">e1\nACGTACGTAA\n>e2\nTTGCAACGTA\n>p1\nGGCCAATTGG\n", name="seqs.fa"):
    return write(tmp_path / name, text)


def raises_naming(exc_type, *parts):
    """pytest.raises whose message must contain every one of ``parts`` (file name, line, column, ...)."""
    return pytest.raises(exc_type, match="(?s)" + "".join(f"(?=.*{re.escape(str(p))})" for p in parts))


# ----------------------------------------------------------------------- what the loaders read


def test_coordinate_pairs_cut_the_right_bases_in_bed_and_one_based_coordinates(tmp_path):
    genome = genome_file(tmp_path)
    data = epi.load_epi(coord_pairs(tmp_path, GOOD_ROWS), genome=genome, motifs=None, n_default_motifs=1)
    assert data.enhancers.names == ["chr1:0-60", "chr1:100-180"]
    off, n = data.enhancers.offsets[0], data.enhancers.lengths[0]
    decoded = "".join("ACGT"[i] for i in data.enh_onehot[0].argmax(0)[off : off + n])
    assert data.enh_onehot[0][:, :off].sum() == 0  # padding is N (all zero), never a base
    assert decoded == GENOME["chr1"][0:60]
    assert list(data.enhancers.lengths) == [60, 80] and list(data.promoters.lengths) == [40, 50]  # own lengths
    one = [(c, y, ec, s + 1, e, pc, ps + 1, pe) for c, y, ec, s, e, pc, ps, pe in GOOD_ROWS]
    same = epi.load_epi(coord_pairs(tmp_path, one, "one.tsv"), genome=genome, coordinates="one_based",
                        n_default_motifs=1)
    assert same.enhancers.names == data.enhancers.names
    np.testing.assert_array_equal(same.enh_onehot, data.enh_onehot)


def test_bgzip_genome_and_gzip_tables_read_like_plain_ones(tmp_path):
    from Bio import bgzf

    with bgzf.BgzfWriter(str(tmp_path / "g.fa.gz"), "wb") as h:
        h.write("".join(f">{c}\n{s}\n" for c, s in GENOME.items()).encode())
    pairs = coord_pairs(tmp_path, GOOD_ROWS)
    zipped = write(tmp_path / "pairs.tsv.gz", gzip.compress(pairs.read_bytes()), "wb")
    a = epi.load_epi(pairs, genome=genome_file(tmp_path), n_default_motifs=1)
    b = epi.load_epi(zipped, genome=tmp_path / "g.fa.gz", n_default_motifs=1)
    np.testing.assert_array_equal(a.prom_onehot, b.prom_onehot)


def test_read_only_genome_folder_puts_the_index_elsewhere(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    genome = genome_file(folder)
    monkeypatch.setattr(epi.os, "access", lambda path, mode: False)  # as for a user without write permission
    data = epi.load_epi(coord_pairs(tmp_path, GOOD_ROWS), genome=genome, index_dir=tmp_path / "idx",
                        n_default_motifs=1)
    assert (tmp_path / "idx" / "genome.fa.fai").exists() and not (folder / "genome.fa.fai").exists()
    assert len(data.pairs) == 4
    with raises_naming(epi.DataError, "genome.fa", "read-only"):
        epi.open_genome(genome)


def test_named_pairs_any_column_order_extra_columns_and_sequence_table(tmp_path):
    pairs = write(tmp_path / "p.tsv", "label\tnote\tpromoter\tcell_line\tenhancer\n1\tx\tp1\tA\te1\n0\ty\tp1\tA\te2\n")
    table = write(tmp_path / "s.csv", "sequence,region\nACGTACGTAA,e1\nTTGCAACGTACC,e2\nGGCCAATTGG,p1\n")
    data = epi.load_epi(pairs, table, n_default_motifs=1)
    assert data.pairs[["enhancer", "promoter", "label"]].values.tolist() == [["e1", "p1", 1], ["e2", "p1", 0]]
    assert list(data.enhancers.lengths) == [10, 12]


def test_longer_regions_are_cropped_only_when_asked_and_loudly(tmp_path):
    fasta = named_fasta(tmp_path, ">e1\n" + "A" * 50 + "\n>e2\nACGTACGTAC\n>p1\nGGCCAATTGG\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", epi.EpiWarning)
        whole = epi.load_epi(named_pairs(tmp_path), fasta, n_default_motifs=1)
    assert whole.enh_onehot.shape[2] == 50
    with pytest.warns(epi.EpiWarning, match=r"1 of 2 regions \(50–50 bp\) centre-cropped to 20 bp because max_region_len"):
        cropped = epi.load_epi(named_pairs(tmp_path), fasta, max_len=20, n_default_motifs=1)
    assert cropped.enh_onehot.shape[2] == 20 and any("centre-cropped" in n for n in cropped.notes)


def test_scan_never_scores_padding_and_finds_a_site_at_the_very_end():
    rng = np.random.default_rng(0)
    motif = epi.jaspar_motifs(1)[0]  # CTCF
    consensus = "".join("ACGT"[i] for i in motif.counts.argmax(0))
    short = "".join(rng.choice(list("ACGT"), 30)) + consensus
    long = "".join(rng.choice(list("ACGT"), 200))
    onehot, kept, offsets = epi.encode([short, long])
    padded = epi.scan_max(onehot, [motif.pwm], kept, offsets)
    alone = epi.scan_max(epi.one_hot([short]), [motif.pwm])
    assert padded[0, 0] == pytest.approx(alone[0, 0])  # same score whether padded or not
    assert padded[0, 0] == pytest.approx(motif.pwm.max(0).sum(), rel=1e-5)  # the consensus at the end is found


def test_duplicate_identical_rows_are_dropped_with_a_warning_naming_the_line(tmp_path):
    pairs = named_pairs(tmp_path, "e1,p1,A,1\ne2,p1,A,0\ne1,p1,A,1\n")
    with pytest.warns(epi.EpiWarning, match=r"pairs.csv: 1 exact duplicate .* first at line 4"):
        frame = epi.load_pairs(pairs)
    assert len(frame) == 2


def test_truth_named_motifs_are_added_from_jaspar_and_truth_aligns(tmp_path):
    truth = write(tmp_path / "truth.csv", "cell_line,GATA1,CTCF\nA,1,0\nB,0,1\n")
    data = epi.load_epi(named_pairs(tmp_path, "e1,p1,A,1\ne2,p1,A,0\ne1,p1,B,0\ne2,p1,B,1\n"),
                        named_fasta(tmp_path, ">e1\n" + "ACGT" * 10 + "\n>e2\n" + "TTGCA" * 8 + "\n>p1\n"
                                    + "GGCCAATTGG" * 4 + "\n"), truth=truth, n_default_motifs=2)
    names = [m.name for m in data.motifs]
    assert names[:2] == ["CTCF", "SP1"] and "GATA1" in names
    assert data.motifs[names.index("GATA1")].matrix_id.startswith("MA0035")  # the vertebrate GATA1, not a plant's
    acc = data.truth["accessibility"]
    assert acc[0, names.index("GATA1")] == 1 and acc[1, names.index("CTCF")] == 1
    assert np.isnan(acc[:, names.index("SP1")]).all()  # no truth for SP1: unknown, not 0


# ----------------------------------------------------------------------- bad pairs


def test_conflicting_duplicate_labels_name_both_lines(tmp_path):
    pairs = named_pairs(tmp_path, "e1,p1,A,1\ne2,p1,A,0\ne1,p1,A,0\n")
    with raises_naming(epi.DataError, "pairs.csv", "lines 2 and 4", "conflicting labels", "'e1'", "'A'"):
        epi.load_pairs(pairs)


@pytest.mark.parametrize("label", ["2", "yes", "", "-1", "0.5"])
def test_label_not_0_or_1_names_line_and_column(tmp_path, label):
    pairs = named_pairs(tmp_path, f"e1,p1,A,1\ne2,p1,A,{label}\n")
    with raises_naming(epi.DataError, "pairs.csv", "line 3", "'label'", repr(label), "expected 0 or 1"):
        epi.load_pairs(pairs)


@pytest.mark.parametrize("row, fields", [("e1,p1,A,1,extra", 5), ("e1,p1,A", 3)])
def test_a_row_with_extra_or_missing_fields_names_its_line(tmp_path, row, fields):
    pairs = named_pairs(tmp_path, f"e1,p1,A,1\n{row}\ne2,p1,A,0\n")
    with raises_naming(epi.DataError, "pairs.csv", "line 3", f"{fields} field(s), expected 4"):
        epi.load_pairs(pairs)


def test_non_utf8_bytes_name_line_and_byte(tmp_path):
    pairs = write(tmp_path / "pairs.csv", b"enhancer,promoter,cell_line,label\ne1,p1,A,1\ne\xe92,p1,A,0\n", "wb")
    with raises_naming(epi.DataError, "pairs.csv", "line 3", "byte 2", "not UTF-8"):
        epi.load_pairs(pairs)


def test_binary_and_corrupt_gzip_files_are_named(tmp_path):
    with raises_naming(epi.DataError, "bin.csv", "line 1", "NUL byte"):
        epi.load_pairs(write(tmp_path / "bin.csv", b"enhancer\x00,promoter\n", "wb"))
    with raises_naming(epi.DataError, "bad.csv.gz", "does not decompress"):
        epi.load_pairs(write(tmp_path / "bad.csv.gz", gzip.compress(b"enhancer,promoter\n")[:12], "wb"))


def test_missing_columns_name_both_accepted_layouts(tmp_path):
    pairs = write(tmp_path / "p.csv", "enh,promoter,cell_line,label\ne1,p1,A,1\n")
    with raises_naming(epi.DataError, "p.csv", "['enhancer']", "enhancer_chrom", "columns found"):
        epi.load_pairs(pairs)


def test_empty_header_only_and_missing_files(tmp_path):
    with raises_naming(epi.DataError, "empty.csv", "file is empty"):
        epi.load_pairs(write(tmp_path / "empty.csv", ""))
    with raises_naming(epi.DataError, "header.csv", "header only"):
        epi.load_pairs(write(tmp_path / "header.csv", "enhancer,promoter,label,cell_line\n"))
    with raises_naming(epi.DataError, "missing.csv", "not found"):
        epi.load_pairs(tmp_path / "missing.csv")


def test_single_class_cell_line_is_named(tmp_path):
    with raises_naming(epi.DataError, "pairs.csv", "cell line 'B'", "single class"):
        epi.load_pairs(named_pairs(tmp_path, "e1,p1,A,1\ne2,p1,A,0\ne1,p1,B,0\n"))


@pytest.mark.parametrize("bad, column, expect", [
    (("A", 0, "chr1", 60, 60, "chr2", 10, 50), "enhancer", "start >= end"),
    (("A", 0, "chr1", 70, 60, "chr2", 10, 50), "enhancer", "start >= end"),
    (("A", 0, "chr1", "1.5e3", 60, "chr2", 10, 50), "'enhancer_start'", "'1.5e3'"),
    (("A", 0, "chr1", 0, 60, "chr2", -5, 50), "'promoter_start'", "'-5'"),
])
def test_bad_coordinates_name_line_and_column(tmp_path, bad, column, expect):
    pairs = coord_pairs(tmp_path, [*GOOD_ROWS[:3], bad])
    with raises_naming(epi.DataError, "pairs.tsv", "line 5", column, expect):
        epi.load_pairs(pairs)


def test_one_based_start_zero_is_refused(tmp_path):
    pairs = coord_pairs(tmp_path, GOOD_ROWS)
    with raises_naming(epi.DataError, "pairs.tsv", "line 2", "enhancer_start", "1-based"):
        epi.load_pairs(pairs, coordinates="one_based")


def test_unknown_contig_and_region_past_the_contig_end_name_the_line(tmp_path):
    genome = genome_file(tmp_path)
    unknown = coord_pairs(tmp_path, [*GOOD_ROWS[:3], ("B", 0, "chr7", 0, 60, "chr2", 10, 50)], "u.tsv")
    with raises_naming(epi.DataError, "u.tsv", "line 5", "enhancer_chrom 'chr7'", "genome.fa"):
        epi.load_epi(unknown, genome=genome)
    past = coord_pairs(tmp_path, [*GOOD_ROWS[:3], ("B", 0, "chr1", 100, 180, "chr2", 150, 201)], "past.tsv")
    with raises_naming(epi.DataError, "past.tsv", "line 5", "chr2:150-201", "200 bp"):
        epi.load_epi(past, genome=genome)


# ----------------------------------------------------------------------- bad sequences and genomes


@pytest.mark.parametrize("text, record, expect", [
    (">e1\nACGTACGTAA\n>e2\nTTXCAACGTA\n>p1\nGGCCAATTGG\n", "record 2 ('e2')", "['X'] (first at position 3)"),
    (">e1\nACGTACGTAA\n>e2\nNNNNNNNN\n>p1\nGGCCAATTGG\n", "record 2 ('e2')", "all N"),
    (">e1\nACGTACGTAA\n>e1\nTTGCAACGTA\n>p1\nGGCCAATTGG\n", "record 2 ('e1')", "duplicate region"),
    (">e1\nACGTACGTAA\n>e2\n>p1\nGGCCAATTGG\n", "record 2 ('e2')", "empty sequence"),
])
def test_bad_fasta_records_are_named(tmp_path, text, record, expect):
    with raises_naming(epi.DataError, "seqs.fa", record, expect):
        epi.load_sequences(named_fasta(tmp_path, text))


def test_text_before_the_first_header_and_bad_table_rows(tmp_path):
    with raises_naming(epi.DataError, "junk.fa", "not readable as FASTA"):
        epi.load_sequences(write(tmp_path / "junk.fa", "hello\n>e1\nACGT\n"))
    table = write(tmp_path / "s.csv", "region,sequence\ne1,ACGT\ne2,AC-GT\n")
    with raises_naming(epi.DataError, "s.csv", "line 3", "region 'e2'", "['-']"):
        epi.load_sequences(table)


def test_unknown_region_names_the_pairs_line(tmp_path):
    with raises_naming(epi.DataError, "pairs.csv", "line 3", "promoter 'p9'", "not in the sequence file"):
        epi.load_epi(named_pairs(tmp_path, "e1,p1,A,1\ne2,p9,A,0\n"), named_fasta(tmp_path))


def test_genome_regions_that_are_all_n_or_not_dna_name_the_pairs_line(tmp_path):
    contigs = {"chr1": "ACGTTGCA" * 25 + "N" * 100 + "ACGTRYCA" * 10, "chr2": "GGGCCCAATT" * 20}
    genome = genome_file(tmp_path, contigs)
    n_only = coord_pairs(tmp_path, [*GOOD_ROWS[:3], ("B", 0, "chr1", 210, 290, "chr2", 10, 50)], "n.tsv")
    with raises_naming(epi.DataError, "n.tsv", "line 5", "enhancer chr1:210-290", "all N"):
        epi.load_epi(n_only, genome=genome)
    iupac = coord_pairs(tmp_path, [*GOOD_ROWS[:3], ("B", 0, "chr1", 300, 360, "chr2", 10, 50)], "r.tsv")
    with raises_naming(epi.DataError, "r.tsv", "line 5", "chr1:300-360", "['R', 'Y']"):
        epi.load_epi(iupac, genome=genome)


def test_plain_gzip_genome_and_ragged_genome_are_named(tmp_path):
    gz = write(tmp_path / "g.fa.gz", gzip.compress(b">chr1\nACGT\n"), "wb")
    with raises_naming(epi.DataError, "g.fa.gz", "not bgzip"):
        epi.open_genome(gz)
    ragged = write(tmp_path / "ragged.fa", ">chr1\nACGTAC\nAC\nACGTAC\n")
    with raises_naming(epi.DataError, "ragged.fa", "line"):
        epi.open_genome(ragged)


def test_coordinate_pairs_without_a_genome_name_the_parameter(tmp_path):
    with raises_naming(epi.DataError, "pairs.tsv", "genome"):
        epi.load_epi(coord_pairs(tmp_path, GOOD_ROWS), named_fasta(tmp_path))


# ----------------------------------------------------------------------- bad cell features


@pytest.mark.parametrize("value", ["inf", "-inf", "1e39", "nan", "x", ""])
def test_cell_features_must_be_finite_float32_numbers(tmp_path, value):
    feats = write(tmp_path / "f.csv", f"f1,cell_line,f2\n0.5,A,1\n1.5,B,{value}\n")
    with raises_naming(epi.DataError, "f.csv", "line 3", "cell line 'B'", "column 'f2'", "finite number"):
        epi.load_cell_features(feats)


def test_cell_feature_table_structure(tmp_path):
    with raises_naming(epi.DataError, "f.csv", "line 3", "'A' appears twice"):
        epi.load_cell_features(write(tmp_path / "f.csv", "cell_line,f1\nA,1\nA,2\n"))
    with raises_naming(epi.DataError, "g.csv", "no 'cell_line' column"):
        epi.load_cell_features(write(tmp_path / "g.csv", "cell,f1\nA,1\n"))
    feats = write(tmp_path / "h.csv", "cell_line,f1\nZ,1.0\n")
    with raises_naming(epi.DataError, "h.csv", "no features for cell line(s) ['A']", "pairs.csv"):
        epi.load_epi(named_pairs(tmp_path), named_fasta(tmp_path), cell_features=feats)


# ----------------------------------------------------------------------- bad motifs and truth

JASPAR = ">MA0001.1 TESTA\nA [ 1 2 0 ]\nC [ 1 0 3 ]\nG [ 0 1 0 ]\nT [ 1 0 0 ]\n"


def test_negative_or_non_finite_motif_counts_name_motif_base_and_position(tmp_path):
    bad = JASPAR + ">MA0002.1 TESTB\nA [ 1 2 0 ]\nC [ 1 -3 3 ]\nG [ 0 1 0 ]\nT [ 1 0 0 ]\n"
    with raises_naming(epi.DataError, "m.jaspar", "motif 2 (MA0002.1 TESTB)", "base C, position 2", "-3"):
        epi.load_motifs(write(tmp_path / "m.jaspar", bad))


def test_malformed_and_duplicate_motifs_are_named(tmp_path):
    with raises_naming(epi.DataError, "bad.jaspar", "no motifs", "expected JASPAR"):
        epi.load_motifs(write(tmp_path / "bad.jaspar", ">MA1 X\nA [ 1 2 ]\nC [ 1 ]\n"))
    with raises_naming(epi.DataError, "dup.jaspar", "motif 2", "duplicate motif id 'MA0001.1'"):
        epi.load_motifs(write(tmp_path / "dup.jaspar", JASPAR + JASPAR))


def test_motif_wider_than_a_region_names_motif_region_and_line(tmp_path):
    motifs = write(tmp_path / "m.jaspar", ">MA0009.1 WIDE\n" + "".join(f"{b} [ {' '.join(['1'] * 12)} ]\n" for b in "ACGT"))
    fasta = named_fasta(tmp_path, ">e1\nACGTACGTAACC\n>e2\nTTGCAACG\n>p1\nGGCCAATTGGCCAA\n")
    data = epi.load_epi(named_pairs(tmp_path), fasta, motifs=motifs)
    with raises_naming(epi.DataError, "MA0009.1 WIDE", "m.jaspar", "12 bp wide", "region 'e2'", "pairs.csv line 3",
                       "8 bp"):
        data.scans()


def test_truth_values_and_motif_names_are_checked(tmp_path):
    pairs, fasta = named_pairs(tmp_path, "e1,p1,A,1\ne2,p1,A,0\n"), named_fasta(tmp_path, ">e1\n" + "ACGT" * 10
                                                                                 + "\n>e2\n" + "TTGCA" * 8 + "\n>p1\n" + "GGCCAATTGG" * 4 + "\n")
    bad = write(tmp_path / "t.csv", "cell_line,CTCF\nA,2\n")
    with raises_naming(epi.DataError, "t.csv", "line 2", "cell line 'A'", "motif 'CTCF'", "'2'", "expected 0 or 1"):
        epi.load_epi(pairs, fasta, truth=bad, n_default_motifs=1)
    nomatch = write(tmp_path / "n.csv", "cell_line,MA0139.2\nA,1\n")
    motifs = write(tmp_path / "m.jaspar", JASPAR)
    with raises_naming(epi.DataError, "n.csv", "matches a motif of the run", "MA0139.2"):
        epi.load_epi(pairs, fasta, motifs=motifs, truth=nomatch)
    with raises_naming(epi.DataError, "o.csv", "'cell_line' column", "'motif' column"):
        epi.load_epi(pairs, fasta, truth=write(tmp_path / "o.csv", "name,CTCF\nA,1\n"), n_default_motifs=1)
    with raises_naming(epi.DataError, "u.csv", "'NOT_A_TF'", "matches a motif of the run"):
        epi.load_epi(pairs, fasta, truth=write(tmp_path / "u.csv", "cell_line,NOT_A_TF\nA,1\n"), n_default_motifs=1)


def test_truth_columns_jaspar_does_not_know_are_reported_not_fatal(tmp_path):
    pairs = named_pairs(tmp_path, "e1,p1,A,1\ne2,p1,A,0\n")
    fasta = named_fasta(tmp_path, ">e1\n" + "ACGT" * 10 + "\n>e2\n" + "TTGCA" * 8 + "\n>p1\n" + "GGCCAATTGG" * 4 + "\n")
    truth = write(tmp_path / "t.csv", "Cell_Line,CTCF,MYSTERY\nA,1,0\n")
    data = epi.load_epi(pairs, fasta, truth=truth, n_default_motifs=2)
    assert any("['MYSTERY']" in n and "cannot be scored" in n for n in data.notes)
    assert any("not JASPAR names" in n for n in data.notes)


def test_truth_may_be_written_motifs_by_cell_lines(tmp_path):
    pairs = named_pairs(tmp_path, "e1,p1,A,1\ne2,p1,A,0\ne1,p1,B,0\ne2,p1,B,1\n")
    fasta = named_fasta(tmp_path, ">e1\n" + "ACGT" * 10 + "\n>e2\n" + "TTGCA" * 8 + "\n>p1\n" + "GGCCAATTGG" * 4 + "\n")
    truth = write(tmp_path / "t.csv", "motif,B,A\nCTCF,1,0\n")
    data = epi.load_epi(pairs, fasta, truth=truth, n_default_motifs=2)
    assert data.truth["accessibility"][:, 0].tolist() == [0, 1]
    assert pd.isna(data.truth["accessibility"][:, 1]).all()


def test_meme_minimal_motifs_are_read(tmp_path):
    meme = ("MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\nBackground letter frequencies\n"
            "A 0.25 C 0.25 G 0.25 T 0.25\n\nMOTIF M1 FOXA\nletter-probability matrix: alength= 4 w= 3 nsites= 10\n"
            " 0.7 0.1 0.1 0.1\n 0.1 0.1 0.1 0.7\n 0.1 0.7 0.1 0.1\n")
    motifs = epi.load_motifs(write(tmp_path / "m.meme", meme))
    assert [(m.matrix_id, m.width) for m in motifs] == [("M1", 3)]
    assert motifs[0].counts[:, 0].argmax() == 0 and motifs[0].counts[:, 1].argmax() == 3  # A then T
