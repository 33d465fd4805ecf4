"""Study 3's VCF/BCF loader on bad input: every case names the file, the line or record, and what was expected.

Text VCF places are physical line numbers (header included) plus the record number; BCF places
are record numbers only. The header written by ``_vcf`` is 4 lines, so record r is line 4 + r.
"""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from latentlab.recon import data as hp
from latentlab.recon import vcf as vcf_io

HEADER = ["##fileformat=VCFv4.2", "##contig=<ID=22>",
          '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
OK = "22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t1|0"


def _text(records: list[str], samples=("s1", "s2")) -> str:
    cols = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)
    return "\n".join(HEADER + [cols] + records) + "\n"


def _vcf(tmp_path, records: list[str], samples=("s1", "s2"), name="x.vcf"):
    path = tmp_path / name
    path.write_text(_text(records, samples))
    return path


def _raises(path, *, where: str, what: str, role: str = "VCF") -> str:
    """Read ``path``; the VcfError must name the file, the place (line/record) and what was wrong."""
    with pytest.raises(hp.VcfError) as err:
        hp.read_vcf(path, role=role)
    msg = str(err.value)
    assert str(path) in msg, msg
    assert re.search(where, msg), f"place {where!r} not in: {msg}"
    assert re.search(what, msg), f"{what!r} not in: {msg}"
    return msg


# --------------------------------------------------------------------------- class 1: silent corruption


@pytest.mark.parametrize("records, where, what", [
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|2\t0|0"], r"line 6 \(record 2, 22:20\)",
                 r"sample 's1' \(column 10\) has GT '0\|2'.*allele index 2 .*expected 0 \(REF\) or 1 \(ALT\)",
                 id="allele-index-2-is-not-MASK"),
    pytest.param(["22\t3000000000\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 5 \(record 1, 22:3000000000\)",
                 r"POS 3000000000 is outside 1 … 2147483647", id="pos-above-2^31-not-wrapped"),
    pytest.param(["22\t10\t.\tA\t<DEL>\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 5 \(record 1, 22:10\)",
                 r"symbolic ALT '<DEL>'; expected a base sequence", id="symbolic-alt"),
    pytest.param(["22\t10\t.\tA\t*\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 5", r"spanning-deletion '\*' ALT",
                 id="star-alt"),
    pytest.param(["22\t10\t.\tA\tA[22:100[\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 5", r"breakend ALT",
                 id="breakend-alt"),
    pytest.param(["22\t10\t.\tA\tG,T\t.\tPASS\t.\tGT\t0|2\t0|0"], r"line 5 \(record 1, 22:10\)",
                 r"2 ALT alleles \['G', 'T'\]; expected one \(biallelic\)", id="multi-allelic"),
    pytest.param([OK, "22\t10\t.\tA\tT\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 6 \(record 2, 22:10\)",
                 r"duplicate position 10 .*expected one biallelic record per position", id="duplicate-position"),
    pytest.param(["22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0", OK], r"line 6 \(record 2, 22:10\)",
                 r"position 10 comes after 20; expected records sorted", id="unsorted"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t1"], r"line 6 \(record 2, 22:20\)",
                 r"sample 's2' \(column 11\) has GT '1', ploidy 1 .*expected diploid", id="haploid-not-missing"),
    pytest.param(["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1|1\t0|1"], r"line 5", r"'0\|1\|1', ploidy 3",
                 id="triploid"),
    pytest.param(["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0/1"], r"line 5 \(record 1, 22:10\)",
                 r"sample 's2' \(column 11\) has GT '0/1', unphased .*needs phased haplotypes", id="unphased"),
    pytest.param(["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t.|.\t0|1"], r"line 5",
                 r"sample 's1' \(column 10\) has GT '\.\|\.', a missing allele .*needs complete genotypes",
                 id="missing"),
    pytest.param(["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|."], r"line 5", r"'0\|\.', a missing allele",
                 id="half-missing"),
    pytest.param(["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t.\t0|1"], r"line 5", r"GT '\.', a missing allele",
                 id="missing-written-as-one-dot-is-not-haploid"),
    pytest.param(["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|1", "23\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0"],
                 r"line 6 \(record 2, 23:20\)", r"chromosome '23' after '22'; expected one contig",
                 id="second-chromosome"),
    pytest.param(["22\t10\t.\tA\tA\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 5", r"ALT 'A' equals REF 'A'",
                 id="alt-equals-ref"),
    pytest.param(["22\t10\t.\tA\t.\t.\tPASS\t.\tGT\t0|0\t0|0"], r"line 5", r"no ALT allele \('\.'\)",
                 id="no-alt"),
    pytest.param(["22\t0\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 5 \(record 1, 22:0\)", r"POS 0 is outside",
                 id="pos-0"),
    pytest.param(["22\t10\t.\tA\tG\t.\tPASS\t.\tDS:GT\t0.5\t1:0|1"], r"line 5 \(record 1, 22:10\)",
                 r"sample 's1' \(column 10\) has GT '\(absent\)', a missing allele", id="gt-absent-after-ds"),
])
def test_silent_corruption_is_refused(tmp_path, records, where, what):
    _raises(_vcf(tmp_path, records), where=where, what=what)


def test_position_beyond_the_declared_contig_length(tmp_path):
    path = tmp_path / "len.vcf"
    path.write_text(_text([OK, "22\t60000\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0"]).replace(
        "##contig=<ID=22>", "##contig=<ID=22,length=50000>"))
    _raises(path, where=r"line 6 \(record 2, 22:60000\)", what=r"beyond the length 50000 .*another genome build")


@pytest.mark.parametrize("ref", ["X", "A C", "-"])
def test_ref_that_is_not_bases(tmp_path, ref):
    _raises(_vcf(tmp_path, [f"22\t10\t.\t{ref}\tG\t.\tPASS\t.\tGT\t0|1\t0|0"]), where=r"line 5",
            what=r"REF .* is not a base sequence")


def test_a_directory_is_not_a_file(tmp_path):
    _raises(tmp_path, where="", what="is a directory; expected a VCF/BCF file")


def test_role_words_the_message(tmp_path):
    _raises(_vcf(tmp_path, ["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\t0|0"]), role="panel",
            where="line 5", what="the panel needs phased haplotypes")


# --------------------------------------------------------------------------- class 2: raw exceptions, misplaced


@pytest.mark.parametrize("records, where, what", [
    pytest.param([OK, "22\tabc\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|0"], r"line 6 \(record 2\)",
                 r"POS 'abc' is not a positive whole number", id="pos-not-a-number"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\tx|y\t0|0"], r"line 6 \(record 2\)",
                 r"htslib cannot parse this record; sample 's1' \(column 10\) has GT 'x\|y'", id="gt-junk"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tDS\t1\t0"], r"line 6 \(record 2, 22:20\)",
                 r"FORMAT DS has no GT; expected phased genotypes", id="format-without-gt"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1"], r"line 6 \(record 2\)",
                 r"10 tab-separated columns; expected 11", id="too-few-columns"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|1\t1|1"], r"line 6 \(record 2\)",
                 r"12 tab-separated columns; expected 11", id="extra-column-not-dropped"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t."], r"line 6 \(record 2\)", r"8 tab-separated columns",
                 id="no-format-column"),
    pytest.param([OK, "", "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|1"], r"line 6 \(record 2\)",
                 r"blank line", id="blank-line-would-segfault-htslib"),
    pytest.param([OK, "22 20 . A G . PASS . GT 0|1 0|1"], r"line 6 \(record 2\)",
                 r"columns separated by spaces\? a VCF needs tabs", id="spaces-would-segfault-htslib"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1:5\t0|1"], r"line 6 \(record 2\)",
                 r"sample 's1' \(column 10\) has 2 ':'-separated values '0\|1:5' but FORMAT 'GT' declares 1",
                 id="more-values-than-format-keys"),
    pytest.param([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|99999999999"], r"line 6 \(record 2\)",
                 r"sample 's2' \(column 11\) has GT '0\|99999999999': allele index 99999999999",
                 id="allele-index-htslib-cannot-hold"),
    pytest.param([OK, "22\t99999999999999999999\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|1"], r"line 6 \(record 2, 22:9+\)",
                 r"POS 99999999999999999999 is outside", id="pos-htslib-cannot-hold"),
    pytest.param([OK, "#CHROM\tPOS"], r"line 6", r"header line .* after the first record", id="header-after-records"),
])
def test_malformed_records_are_named(tmp_path, records, where, what):
    _raises(_vcf(tmp_path, records), where=where, what=what)


def test_trailing_blank_line_is_named_not_a_crash(tmp_path):
    path = tmp_path / "x.vcf"
    path.write_text(_text([OK]) + "\n")  # htslib (cyvcf2 0.35) segfaults on this file
    _raises(path, where=r"line 6 \(record 2\)", what="blank line")


def test_non_utf8_bytes_are_named(tmp_path):
    path = tmp_path / "latin1.vcf"
    path.write_bytes(_text([OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0|1"], samples=("s1", "s\xe9")).encode("latin-1"))
    _raises(path, where=r"line 4:", what=r"byte b'\\xe9' at character \d+ is not UTF-8")


def test_gzip_garbage_and_truncation(tmp_path):
    garbage = tmp_path / "garbage.vcf.gz"
    garbage.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 20)
    _raises(garbage, where="", what="starts like gzip but cannot be decompressed")
    records = [f"22\t{10 * (i + 1)}\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t1|0" for i in range(3000)]
    whole = vcf_io.write_text(tmp_path / "whole.vcf.gz", HEADER + [_text([]).splitlines()[-1]], records)
    raw = whole.read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    _raises(cut, where="", what="bgzip data without its end-of-file block; the file looks truncated")
    first_block = int.from_bytes(raw[16:18], "little") + 1  # BGZF BSIZE: a cut on a block boundary
    cut.write_bytes(raw[:first_block])
    _raises(cut, where="", what="file looks truncated")
    plain_gzip = tmp_path / "cut2.vcf.gz"  # gzip without BGZF blocks: only the stream itself can tell
    plain_gzip.write_bytes(gzip.compress(_text(records).encode())[:5000])
    _raises(plain_gzip, where=r"unreadable after line \d+", what="truncated or corrupt")


@pytest.mark.parametrize("content, where, what", [
    pytest.param("a,b,c\n1,2,3\n", "line 1", r"expected '##fileformat=VCFv4.x'", id="csv"),
    pytest.param("##fileformat=VCFv4.2\n##contig=<ID=22>\n", r"header ends at line 2", r"no '#CHROM' header line",
                 id="no-chrom-line"),
    pytest.param("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\n", "line 2",
                 r"no sample columns", id="no-samples"),
    pytest.param("##fileformat=VCFv4.2\n#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT s1\n", "line 2",
                 r"header columns .*expected \['#CHROM'", id="space-separated-header"),
    pytest.param("##fileformat=VCFv4.2\n22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\n", "line 2",
                 r"expected the '#CHROM .*' line before the first record", id="records-without-chrom-line"),
])
def test_bad_headers_are_named(tmp_path, content, where, what):
    path = tmp_path / "h.vcf"
    path.write_text(content)
    _raises(path, where=where, what=what)


def test_header_only_empty_and_missing(tmp_path):
    _raises(_vcf(tmp_path, []), where="4 header lines", what="no variant records")
    empty = tmp_path / "empty.vcf"
    empty.write_text("")
    _raises(empty, where="", what=r"empty file \(expected a VCF header and records\)")
    _raises(tmp_path / "nope.vcf", where="", what="file not found")


def test_duplicate_sample_names_name_both_columns(tmp_path):
    _raises(_vcf(tmp_path, [OK], samples=("s1", "s1")), where=r"line 4",
            what=r"duplicate sample name\(s\) \['s1'\] \(columns 10 and 11\)")


# --------------------------------------------------------------------------- BCF / bgzip: same checks, right units


def test_bcf_errors_give_record_numbers_not_lines(tmp_path):
    cols = _text([]).splitlines()[-1]
    path = vcf_io.write_text(tmp_path / "bad.bcf", HEADER + [cols],
                             [OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|2\t0|0"])
    msg = _raises(path, where=r"record 2 \(22:20\)", what=r"allele index 2")
    assert "line" not in msg.split(":", 1)[1].split(";")[0], msg


def test_bgzip_errors_give_physical_lines(tmp_path):
    cols = _text([]).splitlines()[-1]
    path = vcf_io.write_text(tmp_path / "bad.vcf.gz", HEADER + [cols],
                             [OK, "22\t20\t.\tA\tG\t.\tPASS\t.\tGT\t0|1\t0/0"])
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()  # htslib adds header lines of its own
    line = 1 + next(i for i, text in enumerate(lines) if text.startswith("22\t20\t"))
    _raises(path, where=rf"line {line} \(record 2, 22:20\)", what="unphased")


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz", ".bcf"])
def test_every_format_reads_the_same(tmp_path, suffix):
    rng = np.random.default_rng(0)
    h = hp.Haplotypes(["a", "b", "c"], np.array([5, 70, 900]), ["A", "C", "G"], ["T", "G", "GTT"],
                      rng.integers(0, 2, (3, 2, 3)).astype(np.int8), "chr20")
    back = hp.read_vcf(hp.write_vcf(tmp_path / f"h{suffix}", h))
    assert back.samples == h.samples and back.chrom == "chr20" and back.alt == h.alt
    np.testing.assert_array_equal(back.positions, h.positions)
    np.testing.assert_array_equal(back.haps, h.haps)


def test_windows_line_endings_and_lowercase_bases_are_accepted(tmp_path):
    path = tmp_path / "crlf.vcf"
    path.write_bytes(_text([OK, "22\t20\t.\ta\tg\t.\tPASS\t.\tGT\t1|1\t0|1"]).replace("\n", "\r\n").encode())
    h = hp.read_vcf(path)
    assert h.ref == ["A", "A"] and h.alt == ["G", "G"]  # VCF bases are case-insensitive
    assert h.haps[:, :, 1].tolist() == [[1, 1], [0, 1]]


def test_plain_gzip_named_vcf_gz_is_read(tmp_path):
    path = tmp_path / "p.vcf.gz"
    path.write_bytes(gzip.compress(_text([OK]).encode()))
    assert hp.read_vcf(path).positions.tolist() == [10]


# --------------------------------------------------------------------------- panel / targets / truth together


def _trio(tmp_path, *, panel=None, targets=None, truth=None, t_samples=("t1", "t2"), truth_samples=None,
          t_chrom="22"):
    sites = [(10, "A", "G"), (20, "C", "T"), (30, "G", "A")]
    p = panel or [f"22\t{pos}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t0|1\t1|1\t0|0" for pos, r, a in sites]
    t = targets or [f"{t_chrom}\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t1|0"]
    tr = truth or ["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t1|1\t0|0", "22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t1|0",
                   "22\t30\t.\tG\tA\t.\tPASS\t.\tGT\t0|0\t0|1"]
    d = tmp_path / "data"
    d.mkdir(exist_ok=True)
    return {"panel": _vcf(d, p, ("p1", "p2", "p3"), "panel.vcf"),
            "targets": _vcf(d, t, t_samples, "targets.vcf"),
            "truth": _vcf(d, tr, truth_samples or t_samples, "truth.vcf")}


def _dataset_raises(paths, *, file: str, where: str, what: str) -> None:
    with pytest.raises(hp.VcfError) as err:
        hp.load_dataset(paths)
    msg = str(err.value)
    assert str(paths[file]) in msg, msg
    assert re.search(where, msg) and re.search(what, msg), msg


def test_a_good_trio_loads_and_truth_is_put_in_target_order(tmp_path):
    paths = _trio(tmp_path, truth=["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t0|0\t1|1",
                                   "22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t1|0\t0|1",
                                   "22\t30\t.\tG\tA\t.\tPASS\t.\tGT\t0|1\t0|0"], truth_samples=("t2", "t1"))
    data = hp.load_dataset(paths)
    assert data.truth.samples == ["t1", "t2"] and data.array.tolist() == [False, True, False]
    assert data.truth.haps[0, :, 0].tolist() == [1, 1]  # t1's truth at 22:10, read from column 11


def test_different_chromosome_names_are_not_aligned_by_position(tmp_path):
    paths = _trio(tmp_path, t_chrom="chr22", targets=["chr22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t1|0"])
    _dataset_raises(paths, file="targets", where="chromosome 'chr22'",
                    what=r"is on '22' \(the same chromosome named two ways\?")


def test_target_site_not_in_panel(tmp_path):
    paths = _trio(tmp_path, targets=["22\t25\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t1|0"])
    _dataset_raises(paths, file="targets", where=r"line 5 \(record 1, 22:25\)", what="position not in")


def test_swapped_alleles_are_named(tmp_path):
    paths = _trio(tmp_path, targets=["22\t20\t.\tT\tC\t.\tPASS\t.\tGT\t0|1\t1|0"])
    _dataset_raises(paths, file="targets", where=r"line 5 \(record 1, 22:20\)",
                    what=r"REF/ALT T/C but .*panel.vcf: line 6 \(record 2, 22:20\) has C/T \(REF and ALT swapped")


def test_targets_overlapping_the_panel(tmp_path):
    paths = _trio(tmp_path, t_samples=("t1", "p2"))
    _dataset_raises(paths, file="targets", where=r"column 11", what=r"\['p2'\] .*also in")


def test_truth_missing_a_target_sample(tmp_path):
    paths = _trio(tmp_path, truth_samples=("t1", "x9"))
    _dataset_raises(paths, file="truth", where="", what=r"no column for target sample\(s\) \['t2'\]")


def test_truth_missing_a_panel_site(tmp_path):
    paths = _trio(tmp_path, truth=["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t1|1\t0|0",
                                   "22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t1|0"])
    _dataset_raises(paths, file="truth", where=r"panel.vcf: line 7 \(record 3, 22:30\)", what="panel site")


def test_truth_disagreeing_with_targets_is_named(tmp_path):
    paths = _trio(tmp_path, truth=["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t1|1\t0|0",
                                   "22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t1|0\t1|0",
                                   "22\t30\t.\tG\tA\t.\tPASS\t.\tGT\t0|0\t0|1"])
    _dataset_raises(paths, file="truth", where=r"line 6 \(record 2, 22:20\)",
                    what=r"sample 't1' is 1\|0 .*has 0\|1 \(the same genotype phased differently")


def test_truth_with_an_extra_site_other_alleles_or_an_extra_sample(tmp_path):
    three = ["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t1|1\t0|0", "22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t1|0",
             "22\t30\t.\tG\tA\t.\tPASS\t.\tGT\t0|0\t0|1"]
    extra = three + ["22\t40\t.\tG\tA\t.\tPASS\t.\tGT\t0|0\t0|1"]
    _dataset_raises(_trio(tmp_path, truth=extra), file="truth", where=r"line 8 \(record 4, 22:40\)",
                    what=r"not a panel site \(1 extra site")
    other = [three[0].replace("\tG\t.", "\tC\t."), *three[1:]]
    _dataset_raises(_trio(tmp_path, truth=other), file="truth", where=r"line 5 \(record 1, 22:10\)",
                    what=r"REF/ALT A/C but .*panel.vcf: line 5 .* has A/G")
    _dataset_raises(_trio(tmp_path, truth=[r.replace("22\t", "chr22\t", 1) for r in three]), file="truth",
                    where="", what=r"chromosome 'chr22' but .*panel.vcf is on '22'")
    wide = [r + "\t0|0" for r in three]
    _dataset_raises(_trio(tmp_path, truth=wide, truth_samples=("t1", "t2", "t9")), file="truth",
                    where="column 12", what=r"sample\(s\) \['t9'\] .*are not in")


def test_targets_observing_every_site_leave_nothing_to_impute(tmp_path):
    paths = _trio(tmp_path, targets=["22\t10\t.\tA\tG\t.\tPASS\t.\tGT\t1|1\t0|0",
                                     "22\t20\t.\tC\tT\t.\tPASS\t.\tGT\t0|1\t1|0",
                                     "22\t30\t.\tG\tA\t.\tPASS\t.\tGT\t0|0\t0|1"])
    _dataset_raises(paths, file="targets", where="all 3 sites", what="expected the targets to lack some")


def test_find_dataset_names_what_is_missing_or_ambiguous(tmp_path):
    paths = _trio(tmp_path)
    found = hp.find_dataset(tmp_path / "data")
    assert found == paths
    (tmp_path / "data" / "truth.vcf").rename(tmp_path / "data" / "truth_final.vcf")
    with pytest.raises(hp.VcfError, match=r"data: no truth.vcf.gz .*found \['panel.vcf', 'targets.vcf', "):
        hp.find_dataset(tmp_path / "data")
    (tmp_path / "data" / "truth_final.vcf").rename(tmp_path / "data" / "truth.vcf")
    (tmp_path / "data" / "panel.bcf").write_bytes(b"")
    with pytest.raises(hp.VcfError, match=r"\['panel.vcf', 'panel.bcf'\] are all 'panel'; keep exactly one"):
        hp.find_dataset(tmp_path / "data")
    with pytest.raises(hp.VcfError, match="not a directory"):
        hp.find_dataset(tmp_path / "nowhere")
