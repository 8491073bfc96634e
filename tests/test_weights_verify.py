"""`maestro weights list|verify` against the registry's published hashes: unverified files are visible, and verify's
exit code says what it found (0 all match, 1 corrupt or missing, 3 unverified)."""

from __future__ import annotations

import hashlib

from maestro import weights


def test_list_shows_which_files_have_a_published_hash(maestro, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # a table wide enough not to fold its cells
    result = maestro("weights", "list")
    assert result.code == 0, result
    assert "unverified (no published sha256)" in result.out
    assert "published" in result.out and "prefix only" in result.out
    vc2 = weights.entry("videocrafter2")
    assert len(vc2.sha256) == 64 and vc2.size == 7404653244  # the Git LFS pointer's values
    assert weights.entry("demucs-htdemucs").sha256_prefix == "8726e21a"  # from the file name 955717e8-8726e21a.th


def test_verify_exit_codes(maestro, tmp_path, monkeypatch):
    monkeypatch.setenv("MAESTRO_WEIGHTS", str(tmp_path))
    (tmp_path / "perceiver.pth").write_bytes(b"a CIM nobody published a hash for")
    result = maestro("weights", "verify", "cim")
    assert result.code == 3 and "unverified (no published sha256)" in result.out, result

    (tmp_path / "model.ckpt").write_bytes(b"not the 7.4 GB checkpoint")
    result = maestro("weights", "verify")  # all known files: one corrupt, one unverified, the rest not here
    assert result.code == 1 and "videocrafter2: does not match" in result.out, result
    assert maestro("weights", "verify", "imagebind_huge").code == 1  # asked for by name, and missing


def test_verify_checks_a_published_sha256_prefix(maestro, tmp_path, monkeypatch):
    monkeypatch.setenv("MAESTRO_WEIGHTS", str(tmp_path))
    data = b"a demucs package"
    (tmp_path / "pkg.th").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    right = weights.WeightFile(id="pkg", filename="pkg.th", url="u", sha256_prefix=digest[:8])
    wrong = weights.WeightFile(id="pkg", filename="pkg.th", url="u", sha256_prefix="00000000")
    monkeypatch.setattr(weights, "catalogue", lambda: {"pkg": right})
    result = maestro("weights", "verify")
    assert result.code == 0 and "matches the published start of its sha256" in result.out, result
    monkeypatch.setattr(weights, "catalogue", lambda: {"pkg": wrong})
    assert maestro("weights", "verify").code == 1
