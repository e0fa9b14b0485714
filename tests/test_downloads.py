"""data_scripts/_download.py against a local HTTP server on 127.0.0.1 (started and stopped here).

The server misbehaves on request: it promises more bytes than it sends (a truncated body), cuts
the first reply short and serves the rest on a Range request (a cut connection), answers a Range
request with a 206 that starts elsewhere (mis-ranged), or sends no Content-Length.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading

import numpy as np
import pytest
from test_real_datasets import load_script


@pytest.fixture
def dl(monkeypatch):
    mod = load_script("_download")
    monkeypatch.setattr(mod, "RETRY_WAIT_S", 0.0)
    return mod


class Server:
    """Serves ``files`` (name -> bytes). ``mode``: good, truncated (always promises the whole
    file, sends 40% of it), cut (the first reply is cut after 40%, later ones are good),
    misranged (a Range request is answered 206 from byte 0), nolength (no Content-Length)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.mode = "good"
        self.requests: list[str | None] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):  # noqa: N802
                data = server.files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                rng = self.headers.get("Range")
                server.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data) and rng:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                sent_from = 0 if server.mode == "misranged" else start
                body = data[sent_from:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header(
                        "Content-Range", f"bytes {sent_from}-{len(data) - 1}/{len(data)}"
                    )
                if server.mode != "nolength":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.mode == "truncated" or (
                    server.mode == "cut" and len(server.requests) == 1
                )
                self.wfile.write(body[: int(0.4 * len(data))] if cut else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


BLOB = np.random.default_rng(0).integers(0, 256, 250_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(BLOB).hexdigest()
SHA = hashlib.sha256(BLOB).hexdigest()


def test_good_download_checks_size_and_md5(dl, server, tmp_path):
    server.files["blob.bin"] = BLOB
    dest = tmp_path / "blob.bin"
    path, sha = dl.download(dl.Archive(f"{server.url}/blob.bin", "blob.bin", md5=MD5), dest)
    assert path.read_bytes() == BLOB and sha == SHA and server.requests == [None]
    assert not dest.with_name("blob.bin.part").exists()
    # a known exact size that the server does not deliver is refused, even with a right md5
    with pytest.raises(dl.ChecksumError, match="its known size is 250001"):
        dl.download(
            dl.Archive(f"{server.url}/blob.bin", "blob.bin", md5=MD5, size=len(BLOB) + 1),
            tmp_path / "b" / "blob.bin",
        )


def test_truncated_body_is_never_complete(dl, server, tmp_path, capsys):
    """The server promises 250000 bytes and closes after 100000, on every request: no checksum is
    known, so before this fix the short file's sha256 became the reference."""
    server.files["blob.bin"] = BLOB
    server.mode = "truncated"
    dest = tmp_path / "blob.bin"
    arch = dl.Archive(f"{server.url}/blob.bin", "blob.bin")
    with pytest.raises(dl.DownloadError, match=r"250000 bytes.*is kept and the next run resumes"):
        dl.download(arch, dest, retries=1)
    assert not dest.exists() and not (tmp_path / "blob.bin.sha256").exists()
    assert dest.with_name("blob.bin.part").read_bytes() == BLOB[:100_000]
    # the next run (server fixed) resumes from the bytes on disk and records the full file's hash
    server.mode = "good"
    path, sha = dl.download(arch, dest)
    assert server.requests[-1] == "bytes=100000-" and path.read_bytes() == BLOB and sha == SHA
    assert (tmp_path / "blob.bin.sha256").read_text().split() == [SHA, "blob.bin", "250000"]
    assert "no official checksum is known" in capsys.readouterr().out


def test_cut_connection_resumes_with_range(dl, server, tmp_path):
    server.files["blob.bin"] = BLOB
    server.mode = "cut"
    dest = tmp_path / "blob.bin"
    path, _ = dl.download(dl.Archive(f"{server.url}/blob.bin", "blob.bin", md5=MD5), dest)
    assert server.requests == [None, "bytes=100000-"] and path.read_bytes() == BLOB


def test_a_206_that_starts_elsewhere_is_refused(dl, server, tmp_path):
    server.files["blob.bin"] = BLOB
    server.mode = "misranged"
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(BLOB[:100_000])
    with pytest.raises(dl.DownloadError, match="asked for bytes from 100000.*from 0; refused"):
        dl.download(dl.Archive(f"{server.url}/blob.bin", "blob.bin", md5=MD5), dest)
    assert dest.with_name("blob.bin.part").read_bytes() == BLOB[:100_000]  # nothing appended
    assert not dest.exists()


def test_complete_part_and_416_then_verified(dl, server, tmp_path):
    server.files["blob.bin"] = BLOB
    dest = tmp_path / "blob.bin"
    dest.with_name("blob.bin.part").write_bytes(BLOB)  # complete, but never renamed
    path, _ = dl.download(dl.Archive(f"{server.url}/blob.bin", "blob.bin", md5=MD5), dest)
    assert server.requests == ["bytes=250000-"] and path.read_bytes() == BLOB


def test_no_length_and_no_known_size_is_said(dl, server, tmp_path, capsys):
    server.files["blob.bin"] = BLOB
    server.mode = "nolength"
    dl.download(dl.Archive(f"{server.url}/blob.bin", "blob.bin", md5=MD5), tmp_path / "blob.bin")
    assert "cannot be checked" in capsys.readouterr().out


def test_recorded_reference_refuses_a_different_copy(dl, server, tmp_path):
    server.files["blob.bin"] = BLOB
    arch = dl.Archive(f"{server.url}/blob.bin", "blob.bin")
    dl.download(arch, tmp_path / "blob.bin")
    (tmp_path / "blob.bin").unlink()
    server.files["blob.bin"] = BLOB[:-1] + bytes([BLOB[-1] ^ 1])  # same size, one bit changed
    with pytest.raises(dl.ChecksumError, match="recorded at first download"):
        dl.download(arch, tmp_path / "blob.bin")
    assert (tmp_path / "blob.bin.part.bad").is_file() and not (tmp_path / "blob.bin").exists()


def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _patch_bsds(dl, monkeypatch, url):
    import dataclasses

    src = dl.SOURCES["bsds500"]
    arch = dataclasses.replace(src.archives[0], url=f"{url}/BSR_bsds500.tgz", md5=None)
    monkeypatch.setitem(dl.SOURCES, "bsds500", dataclasses.replace(src, archives=(arch,)))


@pytest.mark.parametrize("member_size", [1000, 200_000])
def test_archive_that_does_not_unpack_is_moved_aside(
    dl, server, tmp_path, monkeypatch, member_size
):
    """Half an archive padded with zeros to its size. With a 200 kB member of repeated bytes the
    first half of the gzip stream holds the whole member, and tarfile alone unpacks it without a
    word; the gzip trailer (length, CRC) is what says the archive is cut."""
    good = _tgz({"BSR/BSDS500/data/images/test/1.jpg": bytes(range(256)) * (member_size // 256)})
    server.files["BSR_bsds500.tgz"] = good[: len(good) // 2] + b"\0" * (len(good) - len(good) // 2)
    _patch_bsds(dl, monkeypatch, server.url)
    root = tmp_path / "root"
    with pytest.raises(dl.UnpackError) as e:
        dl.fetch_dataset("bsds500", root)
    msg = str(e.value)
    assert "\n" not in msg and "rerun" in msg and "BSR_bsds500.tgz.bad" in msg
    assert (root / ".downloads" / "BSR_bsds500.tgz.bad").is_file()
    assert not (root / ".downloads" / "BSR_bsds500.tgz.sha256").exists()  # no reference kept
    assert dl.status("bsds500", root) == "corrupt"
    server.files["BSR_bsds500.tgz"] = good  # the rerun fetches it again and succeeds
    dl.fetch_dataset("bsds500", root)
    assert dl.status("bsds500", root) == "ready"


def test_status_distinguishes_missing_partial_corrupt_ready(dl, tmp_path):
    root = tmp_path
    assert dl.status("msra10k", root) == "missing"
    (root / "MSRA10K_Imgs_GT" / "Imgs").mkdir(parents=True)
    assert dl.status("msra10k", root) == "missing"  # an empty folder holds nothing
    (root / ".downloads").mkdir()
    part = root / ".downloads" / "MSRA10K_Imgs_GT.zip.part"
    part.write_bytes(b"x")
    assert dl.status("msra10k", root) == "partial"
    part.rename(root / ".downloads" / "MSRA10K_Imgs_GT.zip.part.bad")
    assert dl.status("msra10k", root) == "corrupt"
    marker = root / "MSRA10K_Imgs_GT" / "Imgs" / dl.MARKER
    marker.write_text("{not json")
    assert dl.status("msra10k", root) == "corrupt"
    marker.write_text('{"name": "msra10k", "files": {}}')
    assert dl.status("msra10k", root) == "ready"
    (root / "BSR" / "BSDS500" / "data" / "images").mkdir(parents=True)
    assert dl.status("bsds500", root) == "present (no marker)"
    out = io.StringIO()
    mod = load_script("prepare_all")
    import contextlib

    with contextlib.redirect_stdout(out):
        rows = dict(mod.list_sets(root))
    assert rows["msra10k"] == "ready" and rows["voc2007"] == "missing"
    assert set(rows.values()) <= set(dl.STATES)
