"""Validated reading and atomic writing of phased biallelic VCF/BCF files, around cyvcf2 (htslib).

cyvcf2 parses; this module makes sure that what it parsed is what the file says and that
every refusal names the file, the place and what was expected. Three reasons it cannot
simply iterate cyvcf2:

* htslib *crashes the process* (segfault) on a blank line or a space-separated record,
  and silently drops extra sample columns — so each text line is checked before cyvcf2
  parses it (the same pass gives true line numbers);
* cyvcf2 reports a malformed record as a bare ``Exception`` naming nothing;
* values that parse are not always valid here: ``0|2`` at a biallelic site reads as allele
  2 (the imputer's MASK token), ``POS`` above 2³¹ wraps negative in ``Variant.POS``, a
  haploid call in a diploid record looks like a missing one, ``<DEL>`` looks like an allele.

Places are reported as *line* numbers for text VCF (plain or gzip/bgzip; physical lines of
the file, header included) and as *record* numbers for BCF, which has no lines.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

MAX_POS = 2**31 - 1  # the largest POS a BCF, htslib's int32 API fields and Beagle (Java int) hold
FIXED_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
_BASES = re.compile(r"[ACGTNacgtn]+")
_GT_TEXT = re.compile(r"(\.|\d+)([|/](\.|\d+))*")
_MISSING, _END = -1, -2
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")  # SAM/BGZF spec  # cyvcf2 genotype array codes: missing allele, end of a shorter ploidy


class VcfError(ValueError):
    """A VCF/BCF is not a phased, biallelic, complete genotype file of the expected shape."""


@dataclasses.dataclass
class Genotypes:
    """What a validated file holds: one row per record (all records are kept or the read fails)."""

    path: Path
    samples: list[str]
    chrom: str
    positions: np.ndarray  # int64, 1-based
    ref: list[str]
    alt: list[str]
    haps: np.ndarray  # int8 [n_samples, 2, n_records] of 0/1
    header_lines: int | None  # lines before record 1; None for BCF


# --------------------------------------------------------------------------- file kind and header


def sniff(path: Path) -> tuple[str, bool]:
    """("vcf" | "bcf", gzip-compressed?) from the bytes, never from the name."""
    if not path.exists():
        raise VcfError(f"{path}: file not found")
    if path.is_dir():
        raise VcfError(f"{path}: is a directory; expected a VCF/BCF file")
    if path.stat().st_size == 0:
        raise VcfError(f"{path}: empty file (expected a VCF header and records)")
    with open(path, "rb") as fh:
        head = fh.read(18)
        compressed = head[:2] == b"\x1f\x8b"
        if compressed and head[12:14] == b"BC" and path.stat().st_size >= len(BGZF_EOF):
            fh.seek(-len(BGZF_EOF), os.SEEK_END)
            if fh.read() != BGZF_EOF:
                raise VcfError(f"{path}: bgzip data without its end-of-file block; the file looks truncated "
                               "(expected a complete bgzip file, e.g. re-copy or re-run `bgzip`)")
    try:
        with (gzip.open if compressed else open)(path, "rb") as fh:
            start = fh.read(64)
    except (OSError, EOFError, zlib.error) as exc:
        raise VcfError(f"{path}: starts like gzip but cannot be decompressed ({exc}); expected a VCF "
                       "(plain, gzip or bgzip) or a BCF") from exc
    if start.startswith(b"BCF\x02"):
        return "bcf", compressed
    if start.startswith(b"##fileformat=VCF"):
        return "vcf", compressed
    shown = start[:40].decode("utf-8", "backslashreplace")
    raise VcfError(f"{path}: line 1 starts with {shown!r}; expected '##fileformat=VCFv4.x' (a VCF, plain or "
                   "gzip/bgzip-compressed) or a BCF")


def text_lines(path: Path, compressed: bool) -> Iterator[tuple[int, str]]:
    """(line number, text without the line ending); undecodable bytes and truncation are named."""
    n = 0
    try:
        with (gzip.open if compressed else open)(path, "rb") as fh:
            for n, raw in enumerate(fh, start=1):
                try:
                    yield n, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise VcfError(f"{path}: line {n}: byte {raw[exc.start:exc.start + 1]!r} at character "
                                   f"{exc.start + 1} is not UTF-8 text; expected a UTF-8 (or ASCII) VCF") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise VcfError(f"{path}: unreadable after line {n} ({exc}); the compressed file looks truncated or "
                       "corrupt (expected complete gzip/bgzip data)") from exc


def bcf_header_lines(path: Path, compressed: bool) -> Iterator[tuple[int, str]]:
    """The text header a BCF carries (magic, length, text), as numbered header lines."""
    try:
        with (gzip.open if compressed else open)(path, "rb") as fh:
            fh.read(5)
            (length,) = struct.unpack("<I", fh.read(4))
            text = fh.read(length).rstrip(b"\0").decode("utf-8")
    except (OSError, EOFError, zlib.error, struct.error, UnicodeDecodeError) as exc:
        raise VcfError(f"{path}: BCF header unreadable ({exc}); expected a BCF written by htslib/bcftools") from exc
    yield from enumerate(text.splitlines(), start=1)


def parse_header(path: Path, lines: Iterator[tuple[int, str]], unit: str = "line") -> tuple[int, list[str]]:
    """Consume the header: (number of header lines, sample names). Duplicate/empty names are refused."""
    n, first = next(lines, (0, ""))
    if not first.startswith("##fileformat=VCF"):
        raise VcfError(f"{path}: {unit} 1 is {first[:60]!r}; expected '##fileformat=VCFv4.x'")
    for n, line in lines:
        if line.startswith("##"):
            continue
        if not line.startswith("#CHROM"):
            raise VcfError(f"{path}: {unit} {n}: expected the '#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT "
                           f"<samples>' line before the first record, found {line[:60]!r}")
        cols = line.split("\t")
        if cols[:len(FIXED_COLUMNS)] != FIXED_COLUMNS[:len(cols)] or len(cols) < len(FIXED_COLUMNS):
            raise VcfError(f"{path}: {unit} {n}: header columns {cols[:9]} (tab-separated); expected "
                           f"{FIXED_COLUMNS} followed by one column per sample")
        samples = cols[len(FIXED_COLUMNS):]
        _check_samples(path, f"{unit} {n}", samples)
        return n, samples
    raise VcfError(f"{path}: no '#CHROM' header line (the header ends at line {n}); expected a VCF header")


def _check_samples(path: Path, line: str, samples: list[str]) -> None:
    if not samples:
        raise VcfError(f"{path}: {line}: no sample columns after FORMAT; expected genotypes of "
                       "at least one sample")
    empty = [10 + i for i, s in enumerate(samples) if not s.strip()]
    if empty:
        raise VcfError(f"{path}: {line}: empty sample name in column {empty[0]}")
    seen: dict[str, int] = {}
    for i, s in enumerate(samples):
        if s in seen:
            dupes = sorted({x for x in samples if samples.count(x) > 1})
            raise VcfError(f"{path}: {line}: duplicate sample name(s) {dupes} (columns {10 + seen[s]} "
                           f"and {10 + i}); expected unique names")
        seen[s] = i


# --------------------------------------------------------------------------- records


@dataclasses.dataclass
class _Place:
    """Where a record is, for messages: 'file: line 12 (record 3, chr20:1234)' or 'file: record 3 (…)'."""

    path: Path
    record: int
    line: int | None
    site: str = ""

    def __str__(self) -> str:
        if self.line is None:  # BCF: records only
            return f"{self.path}: record {self.record}" + (f" ({self.site})" if self.site else "")
        return f"{self.path}: line {self.line} (record {self.record}" + (f", {self.site})" if self.site else ")")


def _check_text_record(place: _Place, text: str, n_samples: int) -> list[str]:
    """Structure htslib would crash on or silently repair: blank lines, spaces, wrong column count."""
    if not text.strip():
        raise VcfError(f"{place}: blank line; expected a tab-separated record (remove blank lines: "
                       "htslib crashes on them)")
    if text.startswith("#"):
        raise VcfError(f"{place}: header line {text[:40]!r} after the first record; expected records only")
    fields = text.split("\t")
    expected = len(FIXED_COLUMNS) + n_samples
    if len(fields) != expected:
        spaces = " (columns separated by spaces? a VCF needs tabs)" if len(fields) < 8 and " " in text else ""
        raise VcfError(f"{place}: {len(fields)} tab-separated columns{spaces}; expected {expected} "
                       f"(CHROM … FORMAT and one per sample for the {n_samples} samples in the header)")
    chrom, pos = fields[0], fields[1]
    if not chrom or any(c.isspace() for c in chrom):
        raise VcfError(f"{place}: CHROM {chrom!r} is empty or contains whitespace; expected a contig name")
    if not pos.isdigit():
        raise VcfError(f"{place}: POS {pos!r} is not a positive whole number")
    place.site = f"{chrom}:{pos}"
    if int(pos) > MAX_POS:
        raise VcfError(f"{place}: POS {pos} is outside 1 … {MAX_POS} (2^31 − 1, the largest position BCF and "
                       "Beagle hold)")
    return fields


def _diagnose(fields: list[str] | None, samples: list[str]) -> str:
    """Why htslib refused a record, found from the text (it prints its reason to stderr only)."""
    if fields is None:
        return ""
    keys = fields[8].split(":")
    if "GT" not in keys:
        return f"; FORMAT is {fields[8]!r} without GT, expected GT (phased genotypes)"
    gi = keys.index("GT")
    for i, value in enumerate(fields[9:]):
        parts = value.split(":")
        who = f"; sample {samples[i]!r} (column {10 + i})"
        if len(parts) > len(keys):
            return f"{who} has {len(parts)} ':'-separated values {value!r} but FORMAT {fields[8]!r} declares {len(keys)}"
        gt = parts[gi] if gi < len(parts) else ""
        if not _GT_TEXT.fullmatch(gt):
            return f"{who} has GT {gt!r}, expected allele indices joined by '|' (e.g. 0|1)"
        big = [a for a in re.split(r"[|/]", gt) if a.isdigit() and int(a) > 1]
        if big:
            return f"{who} has GT {gt!r}: allele index {big[0]}, expected 0 (REF) or 1 (ALT)"
    record = "\t".join(fields)
    return f"; the record reads {record[:120]!r}"


def iterate_records(path: Path, vcf, fields_of: Iterator[tuple[int, str]] | None,
                    samples: list[str]) -> Iterator[tuple[_Place, object, list[str] | None]]:
    """cyvcf2 records with their place; text lines (when given) are checked *before* htslib parses them."""
    records = iter(vcf)
    number = 0
    while True:
        line, fields = None, None
        if fields_of is not None:
            nxt = next(fields_of, None)
            if nxt is None:
                return
            line, text = nxt
            fields = _check_text_record(_Place(path, number + 1, line), text, len(samples))
        number += 1
        place = _Place(path, number, line)
        try:
            rec = next(records)
        except StopIteration:
            if fields is None:
                return
            raise VcfError(f"{place}: htslib stopped before this record; expected it to be read") from None
        except Exception as exc:  # cyvcf2 raises a bare Exception for a record htslib cannot parse
            if fields_of is not None:
                for _ in fields_of:  # a corrupt/truncated stream further on is the likelier cause: name it
                    pass
            raise VcfError(f"{place}: htslib cannot parse this record{_diagnose(fields, samples)}") from exc
        place.site = f"{rec.CHROM}:{rec.start + 1}"
        yield place, rec, fields


def _gt_text(fields: list[str] | None, i: int, gt: np.ndarray) -> str:
    """The sample's GT as written (text VCF) or as htslib decoded it (BCF)."""
    if fields is not None:
        gi, parts = fields[8].split(":").index("GT"), fields[9 + i].split(":")
        return parts[gi] if gi < len(parts) else "(absent)"
    alleles = ["." if a == _MISSING else str(a) for a in gt[:-1] if a != _END]
    return ("|" if gt[-1] else "/").join(alleles)


def check_alleles(place: _Place, ref: str, alts: list[str]) -> None:
    """One ALT, a base sequence (SNP or indel), different from REF. Symbolic alleles are refused."""
    if not alts:
        raise VcfError(f"{place}: no ALT allele ('.'); expected one ALT (drop monomorphic records)")
    if len(alts) > 1:
        raise VcfError(f"{place}: {len(alts)} ALT alleles {alts}; expected one (biallelic): split with "
                       "`bcftools norm -m-` and keep one record per position")
    alt = alts[0]
    if not _BASES.fullmatch(ref):
        raise VcfError(f"{place}: REF {ref!r} is not a base sequence; expected A/C/G/T/N bases")
    if not _BASES.fullmatch(alt):
        kind = "symbolic" if alt.startswith("<") else "breakend" if "[" in alt or "]" in alt else \
            "spanning-deletion '*'" if alt == "*" else "non-base"
        raise VcfError(f"{place}: {kind} ALT {alt!r}; expected a base sequence (SNP or indel) — structural "
                       "and symbolic alleles cannot be imputed here")
    if alt.upper() == ref.upper():
        raise VcfError(f"{place}: ALT {alt!r} equals REF {ref!r}; expected a different allele")


def check_genotypes(place: _Place, rec, fields: list[str] | None, samples: list[str], *, role: str) -> np.ndarray:
    """[n, 2] int8 alleles of a diploid, phased, complete, biallelic record — or the first offence, named."""
    fmt = list(rec.FORMAT or [])
    if "GT" not in fmt:
        raise VcfError(f"{place}: FORMAT {':'.join(fmt) or '(none)'} has no GT; expected phased genotypes (GT)")
    gt = rec.genotype.array()  # [n, ploidy + 1]: alleles then phased flag; -1 missing, -2 shorter ploidy
    alleles = gt[:, :-1]
    ploidy = (alleles != _END).sum(axis=1)

    def sample(i: int) -> str:
        return f"sample {samples[i]!r} (column {10 + i}) has GT {_gt_text(fields, i, gt[i])!r}"

    bad = np.flatnonzero((ploidy != 2) & ~(alleles[:, :1] == _MISSING).all(axis=1))  # '.' is missing, not haploid
    if len(bad):
        raise VcfError(f"{place}: {sample(bad[0])}, ploidy {ploidy[bad[0]]} ({len(bad)} sample(s)); expected "
                       "diploid genotypes (mixed ploidy, e.g. chrX/Y males, is not supported)")
    alleles = alleles[:, :2]
    bad = np.flatnonzero((alleles == _MISSING).any(axis=1) | (ploidy != 2))
    if len(bad):
        raise VcfError(f"{place}: {sample(bad[0])}, a missing allele ({len(bad)} sample(s)); the {role} needs "
                       "complete genotypes (impute/fill or drop the record first)")
    bad = np.flatnonzero((alleles > 1).any(axis=1))
    if len(bad):
        raise VcfError(f"{place}: {sample(bad[0])}, allele index {alleles[bad[0]].max()} but the record has one "
                       f"ALT allele ({len(bad)} sample(s)); expected 0 (REF) or 1 (ALT)")
    bad = np.flatnonzero(gt[:, -1] == 0)
    if len(bad):
        raise VcfError(f"{place}: {sample(bad[0])}, unphased ({len(bad)} sample(s)); the {role} needs phased "
                       "haplotypes written a|b (phase with Beagle or SHAPEIT first)")
    return alleles.astype(np.int8)


# --------------------------------------------------------------------------- the reader


def read_genotypes(path: str | Path, *, role: str = "VCF") -> Genotypes:
    """Read and validate one phased biallelic single-contig VCF/BCF; the first offence is a VcfError."""
    from cyvcf2 import VCF

    path = Path(path)
    kind, compressed = sniff(path)
    lines = text_lines(path, compressed) if kind == "vcf" else None
    header = lines if lines is not None else bcf_header_lines(path, compressed)
    header_lines, samples = parse_header(path, header, unit="line" if kind == "vcf" else "BCF header line")
    try:
        vcf = VCF(str(path))
    except Exception as exc:  # OSError or cyvcf2's bare Exception on a header htslib refuses
        raise VcfError(f"{path}: htslib cannot read the header ({exc}); expected a VCF 4.x header") from exc
    try:
        return _collect(path, vcf, lines, samples, header_lines if kind == "vcf" else None, role)
    finally:
        vcf.close()


def _contig_lengths(vcf) -> dict[str, int]:
    """Lengths the header declares (``##contig=<ID=…,length=…>``); cyvcf2 raises when none are given."""
    try:
        return {name: int(n) for name, n in zip(vcf.seqnames, vcf.seqlens, strict=True) if int(n) > 0}
    except (AttributeError, ValueError):
        return {}


def _collect(path: Path, vcf, lines, samples: list[str], header_lines: int | None, role: str) -> Genotypes:
    lengths = _contig_lengths(vcf)
    positions: list[int] = []
    refs: list[str] = []
    alts: list[str] = []
    rows: list[np.ndarray] = []
    chrom = None
    for place, rec, fields in iterate_records(path, vcf, lines, samples):
        pos = rec.start + 1  # Variant.POS is a C int and wraps above 2^31; start is 64-bit
        chrom = chrom or rec.CHROM
        if chrom != rec.CHROM:
            raise VcfError(f"{place}: chromosome {rec.CHROM!r} after {chrom!r}; expected one contig per file "
                           "(split with `bcftools view -r`)")
        if not 1 <= pos <= MAX_POS:
            raise VcfError(f"{place}: POS {pos} is outside 1 … {MAX_POS} (2^31 − 1, the largest position BCF and "
                           "Beagle hold)")
        if pos > lengths.get(chrom, MAX_POS):
            raise VcfError(f"{place}: POS {pos} is beyond the length {lengths[chrom]} the header gives {chrom!r}; "
                           "expected a position on the contig (another genome build?)")
        if positions and pos == positions[-1]:
            raise VcfError(f"{place}: duplicate position {pos} (also the previous record); expected one biallelic "
                           "record per position (drop or merge split multi-allelic sites)")
        if positions and pos < positions[-1]:
            raise VcfError(f"{place}: position {pos} comes after {positions[-1]}; expected records sorted by "
                           "position (`bcftools sort`)")
        check_alleles(place, rec.REF, list(rec.ALT))
        rows.append(check_genotypes(place, rec, fields, samples, role=role))
        positions.append(pos)
        refs.append(rec.REF.upper())
        alts.append(rec.ALT[0].upper())
    if not rows:
        where = f"{header_lines} header lines" if header_lines is not None else "a header"
        raise VcfError(f"{path}: {where} and no variant records; expected at least one record")
    return Genotypes(path, samples, str(chrom), np.asarray(positions, dtype=np.int64), refs, alts,
                     np.stack(rows, axis=-1), header_lines)


# --------------------------------------------------------------------------- writing


def write_text(path: str | Path, header: list[str], records: list[str]) -> Path:
    """Write VCF lines atomically; the name picks the format: .vcf, .vcf.gz/.vcf.bgz (bgzip), .bcf (htslib)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if path.name.endswith(".vcf"):
            tmp.write_text("\n".join(header + records) + "\n")
        else:
            _write_htslib(tmp, header, records, _mode(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _mode(path: Path) -> str:
    if path.name.endswith((".vcf.gz", ".vcf.bgz")):
        return "wz"
    if path.name.endswith(".bcf"):
        return "wb"
    raise ValueError(f"{path}: unknown VCF suffix; use .vcf, .vcf.gz, .vcf.bgz or .bcf")


def _write_htslib(path: Path, header: list[str], records: list[str], mode: str) -> None:
    from cyvcf2 import Writer

    writer = Writer.from_string(str(path), "\n".join(header) + "\n", mode=mode)
    try:
        for line in records:
            writer.write_record(writer.variant_from_string(line))
    finally:
        writer.close()
