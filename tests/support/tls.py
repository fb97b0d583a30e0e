"""A throwaway certificate authority for TLS tests (openssl CLI)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(folder: Path, names: dict[str, str]) -> None:
    """``ca.crt``/``ca.key`` and, per ``name -> subjectAltName``, ``name.crt``/``name.key``."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=pn-test-ca", "-keyout", str(folder / "ca.key"),
             "-out", str(folder / "ca.crt"))  # fmt: skip
    for name, san in names.items():
        key, csr, crt = (folder / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", str(key), "-out", str(csr))  # fmt: skip
        extfile = folder / f"{name}.ext"
        extfile.write_text(f"subjectAltName={san}\n" if san else "\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(folder / "ca.crt"),
                 "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-extfile", str(extfile), "-out", str(crt))  # fmt: skip
        key.chmod(0o600)
