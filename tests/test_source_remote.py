"""Inputs named by URL, with no network: file:// URLs on real files, and s3:// objects served by
a pyarrow filesystem over a folder (``FolderStore``) standing in at the network edge
(``remote.filesystem_for``), read alone and through the whole job against the sandbox."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from customer_import import cli
from customer_import.config import SourceConfig, is_url
from customer_import.contracts import Batch, ExitCode, RunReport
from customer_import.errors import ConfigError, InputError
from customer_import.run.options import RunOptions
from customer_import.run.pipeline import run_job
from customer_import.sandbox.testing import SandboxServer
from customer_import.source import file_digest, open_source, remote
from tests.conftest import (
    API_KEY,
    CREDENTIALS,
    HEADER,
    assert_conservation,
    load,
    read_summary,
    write_csv,
    write_job,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # a value that must never be printed
KEY_ID = "AKIAIOSFODNN7EXAMPLE"

# --- a store in a folder: s3://bucket/key is <root>/bucket/key ----------------------------------


class FolderStore(pafs.FileSystemHandler):
    """Objects in a folder, with the reads counted and failures on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inner = pafs.SubTreeFileSystem(str(root), pafs.LocalFileSystem())
        self.opened = 0
        self.fail: OSError | None = None  # raised by every call when set
        self.cut_after: int | None = None  # a read stream fails after this many bytes

    def put(self, key: str, data: bytes) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"s3://{key}"

    def get_type_name(self) -> str:
        return "folder-store"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        if self.fail is not None:
            raise self.fail
        return self.inner.get_file_info(paths)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        self.opened += 1
        if self.fail is not None:
            raise self.fail
        data = (self.root / path).read_bytes()
        if self.cut_after is not None:
            return pa.PythonFile(_CutShort(data, self.cut_after), mode="r")
        return pa.BufferReader(data)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.open_input_stream(path)

    def get_file_info_selector(self, selector: Any) -> Any:
        raise NotImplementedError

    def create_dir(self, path: str, recursive: bool) -> None:
        raise NotImplementedError

    def delete_dir(self, path: str) -> None:
        raise NotImplementedError

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        raise NotImplementedError

    def delete_root_dir_contents(self) -> None:
        raise NotImplementedError

    def delete_file(self, path: str) -> None:
        raise NotImplementedError

    def move(self, src: str, dest: str) -> None:
        raise NotImplementedError

    def copy_file(self, src: str, dest: str) -> None:
        raise NotImplementedError

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        raise NotImplementedError

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        raise NotImplementedError


class _CutShort(io.RawIOBase):
    """A download whose connection drops after ``limit`` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data, self._limit, self._at = data, limit, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._at >= self._limit:
            raise OSError("AWS Error NETWORK_CONNECTION during GetObject operation: reset")
        size = len(self._data) if size < 0 else size
        end = min(self._at + size, self._limit)
        chunk, self._at = self._data[self._at : end], end
        return chunk


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FolderStore:
    """s3:// URLs served from a folder; the network edge is the only thing replaced."""
    folder = FolderStore(tmp_path / "store")
    filesystem = pafs.PyFileSystem(folder)

    def from_uri(url: str) -> tuple[pafs.FileSystem, str]:
        assert url.startswith("s3://"), url
        return filesystem, url.removeprefix("s3://").split("?")[0]

    monkeypatch.setattr(remote, "filesystem_for", from_uri)
    return folder


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder remote copies go to, so a test can see them come and go."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def no_cloud_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "CLOUDSDK_CONFIG",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.aws, no gcloud folder


def read(location: Path | str, **config: Any) -> tuple[list[Batch], dict[str, Any]]:
    with open_source(SourceConfig(**config), location) as source:
        batches = list(source.batches())
        facts = {
            "header": source.header,
            "encoding": source.encoding,
            "delimiter": source.delimiter,
            "size": source.size,
            "digest": source.digest,
            "name": source.name,
        }
    return batches, facts


def contents(batches: list[Batch]) -> tuple[list[tuple[Any, ...]], list[Any]]:
    rows = [row for batch in batches for row in batch.frame.rows()]
    return rows, [failure for batch in batches for failure in batch.failures]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


# Real exports' trouble: a BOM, cp1252 accents, a broken line, a quoted line break, a blank line.
CSV = (
    'id,name,city\r\n1,Zoë,Köln\r\n2,"multi\nline",Paris\r\n3,too,many,fields\r\n\r\n4,Åsa,Oslo\r\n'
)
FILES = {
    "csv-cp1252": ("export.csv", CSV.encode("cp1252"), {"encoding": "auto"}),
    "csv-utf8-bom": ("export.csv", b"\xef\xbb\xbf" + CSV.encode(), {}),
    "csv-gz": ("export.csv.gz", gzip.compress(CSV.encode()), {}),
    "tsv": ("export.tsv", CSV.replace(",", "\t").encode(), {}),
    "parquet": (
        "export.parquet",
        parquet_bytes(pa.table({"id": [1, 2, None], "score": [7022550000000.0, 0.5, None]})),
        {},
    ),
}


# --- which URLs are accepted -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://bucket/export.csv", True),
        ("gs://bucket/export.csv", True),
        ("file:///srv/export.csv", True),
        ("https://example.com/export.csv", True),  # a URL, refused later with its own message
        ("export.csv", False),
        ("exports/s3:/x.csv", False),
        ("C:\\exports\\export.csv", False),
        (Path("s3://bucket/export.csv"), False),  # a Path has already folded the "//"
    ],
)
def test_a_url_is_a_string_with_a_scheme(location: str | Path, expected: bool) -> None:
    assert is_url(location) is expected


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/export.csv",
        "http://example.com/export.csv",
        "hdfs://namenode/export.csv",
        "abfs://container@account.dfs.core.windows.net/export.csv",
        "ftp://example.com/export.csv",
    ],
)
def test_other_schemes_are_a_config_error_naming_the_supported_ones(url: str) -> None:
    with pytest.raises(ConfigError, match=r"not supported; give a local path or an s3://, gs://"):
        open_source(SourceConfig(), url)


@pytest.mark.parametrize(
    "url",
    [
        f"s3://{KEY_ID}:{SECRET}@bucket/export.csv",
        f"gs://someone:{SECRET}@bucket/export.csv",
        f"https://user:{SECRET}@example.com/export.csv",
        f"file://user:{SECRET}@/srv/export.csv",
        f"s3://bucket/export.csv?secret_key={SECRET}",
        f"s3://bucket/export.csv?region=eu-west-1&session_token={SECRET}",
        f"s3://bucket/export.csv?{SECRET}",
    ],
)
def test_credentials_in_a_url_are_refused_and_never_printed(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_source(SourceConfig(), url)
    assert SECRET not in str(caught.value)
    assert KEY_ID not in str(caught.value)


def test_a_public_gcs_bucket_is_named_with_the_anonymous_user_which_is_no_secret() -> None:
    url = remote.parse_url("gs://anonymous@public-exports/customers.csv")
    assert (url.scheme, url.file_name) == ("gs", "customers.csv")
    with pytest.raises(ConfigError, match="bucket alone"):
        remote.parse_url("s3://anonymous@exports/customers.csv")  # S3 would take it as a key id


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket", "name one object"),
        ("s3://bucket/", "name one object"),
        ("s3://bucket/exports/", "name one object"),
        ("s3://bucket/export#1.csv", "%23"),
        ("file://exports/export.csv", "three slashes"),  # never relative to any folder
        ("file://fileserver/export.csv", "three slashes"),
        ("file:///srv/export.csv?region=eu-west-1", "parameter region not accepted"),
    ],
)
def test_a_url_that_names_no_single_object_is_a_config_error(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_source(SourceConfig(), url)


# --- file:// URLs: local files, named as URLs ----------------------------------------------------


@pytest.mark.parametrize("kind", FILES)
def test_a_file_url_reads_exactly_like_its_path(tmp_path: Path, kind: str) -> None:
    name, data, config = FILES[kind]
    path = tmp_path / "my exports" / name
    path.parent.mkdir()
    path.write_bytes(data)
    url = path.as_uri()  # file:///.../my%20exports/...

    by_url, url_facts = read(url, **config)
    by_path, path_facts = read(path, **config)

    assert contents(by_url) == contents(by_path)
    assert url_facts == {**path_facts, "name": url}
    assert url_facts["digest"] == sha256(data) == file_digest(url)


def test_a_missing_file_url_is_an_input_error_naming_the_url(tmp_path: Path) -> None:
    url = (tmp_path / "missing.csv").as_uri()
    with pytest.raises(InputError, match=f"^{url}: file not found"):
        open_source(SourceConfig(), url)


# --- objects: copied once, read as local files, the copy deleted --------------------------------


@pytest.mark.parametrize("kind", FILES)
def test_an_object_reads_exactly_like_the_same_bytes_on_disk(
    tmp_path: Path, store: FolderStore, temp_dir: Path, kind: str
) -> None:
    name, data, config = FILES[kind]
    url = store.put(f"exports/daily/{name}", data)
    local = tmp_path / name
    local.write_bytes(data)

    by_url, url_facts = read(url, **config)
    by_path, path_facts = read(local, **config)

    assert contents(by_url) == contents(by_path)
    assert url_facts == {**path_facts, "name": url}
    assert url_facts["digest"] == sha256(data)
    assert store.opened == 1  # one transfer, whatever the number of passes over the records
    assert list(temp_dir.iterdir()) == []  # the copy is gone once the source is closed


def test_the_copy_is_readable_by_the_owner_only_and_deleted_on_close(
    store: FolderStore, temp_dir: Path
) -> None:
    url = store.put("exports/export.csv", b"id,name\n1,a\n")
    with open_source(SourceConfig(), url) as source:
        (copy,) = temp_dir.iterdir()
        assert copy == source.path
        assert copy.stat().st_mode & 0o777 == 0o600
        assert copy.read_bytes() == b"id,name\n1,a\n"
    assert not copy.exists()


def test_an_object_that_is_not_a_table_leaves_no_copy(store: FolderStore, temp_dir: Path) -> None:
    url = store.put("exports/export.csv.gz", b"not gzip at all")
    with pytest.raises(InputError, match=f"^{url}: cannot read the file"):
        open_source(SourceConfig(), url)
    assert list(temp_dir.iterdir()) == []


def test_an_unsupported_format_fails_before_any_transfer(store: FolderStore) -> None:
    url = store.put("exports/export.xls", b"\xd0\xcf\x11\xe0")
    with pytest.raises(InputError, match=r"unsupported file type; expected one of \.csv"):
        open_source(SourceConfig(), url)
    assert store.opened == 0


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("exports/missing.csv", "no such object"),
        ("exports/empty.csv", r"the object is empty \(0 bytes\)"),
        ("exports/folder.csv", "a folder, not an object"),
    ],
)
def test_a_missing_or_empty_object_is_a_specific_input_error(
    store: FolderStore, key: str, message: str
) -> None:
    store.put("exports/empty.csv", b"")
    (store.root / "exports/folder.csv").mkdir()
    with pytest.raises(InputError, match=f"^s3://{key}: {message}"):
        open_source(SourceConfig(), f"s3://{key}")


def test_a_transfer_cut_short_is_an_input_error_and_leaves_no_copy(
    store: FolderStore, temp_dir: Path
) -> None:
    url = store.put("exports/export.csv", b"id,name\n" + b"1,a\n" * 5_000_000)
    store.cut_after = 9 << 20
    with pytest.raises(InputError, match=f"^{url}: cannot reach S3"):
        open_source(SourceConfig(), url)
    assert list(temp_dir.iterdir()) == []


def test_access_denied_says_where_credentials_come_from_without_their_values(
    store: FolderStore, monkeypatch: pytest.MonkeyPatch, no_cloud_credentials: None
) -> None:
    url = store.put("exports/export.csv", b"id\n1\n")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    # pyarrow's text for a 403, here with the key id and secret echoed by a misbehaving proxy.
    store.fail = OSError(
        "When getting information for key 'export.csv' in bucket 'exports': AWS Error "
        f"ACCESS_DENIED during HeadObject operation: denied for {KEY_ID} / {SECRET}"
    )

    with pytest.raises(InputError) as caught:
        open_source(SourceConfig(), url)

    message = str(caught.value)
    assert message.startswith(f"{url}: S3 refused access")
    assert "credentials found in: AWS_ACCESS_KEY_ID" in message
    assert "s3:GetObject" in message
    assert SECRET not in message and KEY_ID not in message


def test_no_credentials_at_all_is_said_so(store: FolderStore, no_cloud_credentials: None) -> None:
    url = store.put("exports/export.csv", b"id\n1\n")
    store.fail = OSError("AWS Error ACCESS_DENIED during HeadObject operation: No response body.")
    with pytest.raises(InputError, match=r"set AWS_ACCESS_KEY_ID .*\(no credentials found"):
        open_source(SourceConfig(), url)


def test_an_unreachable_store_is_named(store: FolderStore) -> None:
    url = store.put("exports/export.csv", b"id\n1\n")
    store.fail = OSError(
        "When getting information for key 'export.csv' in bucket 'exports': AWS Error "
        "NETWORK_CONNECTION during HeadObject operation: curlCode: 6, Could not resolve hostname"
    )
    with pytest.raises(InputError, match=f"^{url}: cannot reach S3"):
        open_source(SourceConfig(), url)


def test_gcs_without_credentials_names_the_google_variable(
    monkeypatch: pytest.MonkeyPatch, no_cloud_credentials: None
) -> None:
    def unauthenticated(url: str) -> tuple[pafs.FileSystem, str]:
        # pyarrow's text when no Google credentials can be found.
        raise OSError(
            "google::cloud::Status(UNAVAILABLE: Retry policy exhausted, with a last message of "
            "Could not create a OAuth2 access token to authenticate the request.)"
        )

    monkeypatch.setattr(remote, "filesystem_for", unauthenticated)
    with pytest.raises(
        InputError, match=r"Google Cloud Storage refused access.*GOOGLE_APPLICATION"
    ):
        open_source(SourceConfig(), "gs://bucket/export.csv")


def test_file_digest_of_an_object_streams_it_without_a_copy(
    store: FolderStore, temp_dir: Path
) -> None:
    data = b"id,name\n" + b"1,a\n" * 1000
    url = store.put("exports/export.csv", data)
    assert file_digest(url) == sha256(data)
    assert list(temp_dir.iterdir()) == []


# --- without the cloud extra (pyarrow) ------------------------------------------------------


@pytest.fixture
def without_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the cloud extra were not installed: every import of pyarrow fails."""
    for name in [name for name in sys.modules if name.split(".")[0] == "pyarrow"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)


@pytest.mark.parametrize(
    ("url", "service"),
    [("s3://exports/export.csv", "S3"), ("gs://exports/export.parquet", "Google Cloud Storage")],
)
def test_an_object_without_the_cloud_extra_is_a_config_error_naming_it(
    url: str, service: str, without_pyarrow: None
) -> None:
    message = (
        f"^{url}: reading objects on {service} needs pyarrow, which is not installed: "
        r"pip install 'customer-import\[cloud\]'$"
    )
    with pytest.raises(ConfigError, match=message):
        open_source(SourceConfig(), url)
    with pytest.raises(ConfigError, match=message):
        file_digest(url)


def test_a_local_run_never_loads_pyarrow(tmp_path: Path) -> None:
    """pyarrow (the cloud extra) is imported only for an object or a Parquet file that repeats a
    column name: not by importing the package, nor by reading a local CSV or Parquet file."""
    csv, parquet = tmp_path / "export.csv", tmp_path / "export.parquet"
    csv.write_text("id,name\n1,a\n", encoding="utf-8")
    parquet.write_bytes(parquet_bytes(pa.table({"id": [1, None], "score": [0.5, 2.0]})))
    script = (
        "import sys, customer_import.source, customer_import.source.parquet_file\n"
        "print('pyarrow' in sys.modules)\n"
        "from customer_import.config import SourceConfig\n"
        "for path in sys.argv[1:]:\n"
        "    with customer_import.source.open_source(SourceConfig(), path) as source:\n"
        "        assert sum(batch.frame.height for batch in source.batches()) > 0\n"
        "print('pyarrow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(csv), str(parquet)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["False", "False"]


# --- the whole job -------------------------------------------------------------------------

LINES = (
    "C-1,Ada,Lovelace,ada@example.com,(212) 555-0101,Active,no",
    "C-2,Grace,Hopper,grace@example.com,,Inactive,yes",
    "C-3,Alan,Turing,not-an-email,,Active,",
)


def export_bytes(*lines: str) -> bytes:
    return gzip.compress(("\n".join([HEADER, *lines]) + "\n").encode(), mtime=0)


def run(tmp_path: Path, url: str, sandbox: SandboxServer, **options: Any) -> RunReport:
    job = write_job(tmp_path, write_csv(tmp_path / "unused.csv"), extra="max_invalid_ratio = 1.0")
    settings = {"input": url, "base_url": sandbox.base_url, "environ": CREDENTIALS, **options}
    return run_job(load(job), RunOptions(**settings))


def test_a_job_imports_an_s3_object_and_reports_its_url_size_and_hash(
    tmp_path: Path, store: FolderStore, temp_dir: Path, sandbox: SandboxServer
) -> None:
    data = export_bytes(*LINES)
    url = store.put("exports/daily/customers.csv.gz", data)

    report = run(tmp_path, url, sandbox)

    assert report.status == "completed"
    assert_conservation(tmp_path / "out", 3)
    assert sorted(c["externalId"] for c in sandbox.customers()) == ["C-1", "C-2"]
    summary = read_summary(tmp_path / "out")
    assert summary["input"] == {"path": url, "size": len(data), "hash": sha256(data)}
    assert list(temp_dir.iterdir()) == []


def test_a_job_imports_a_parquet_object(
    tmp_path: Path, store: FolderStore, sandbox: SandboxServer
) -> None:
    rows = [line.split(",") for line in LINES]
    table = pa.table(
        {name: [r[i] or None for r in rows] for i, name in enumerate(HEADER.split(","))}
    )
    url = store.put("exports/customers.parquet", parquet_bytes(table))

    report = run(tmp_path, url, sandbox)

    assert report.status == "completed"
    assert_conservation(tmp_path / "out", 3)
    assert sorted(c["externalId"] for c in sandbox.customers()) == ["C-1", "C-2"]


def test_a_job_imports_a_file_url(tmp_path: Path, sandbox: SandboxServer) -> None:
    path = tmp_path / "exports" / "customers.csv.gz"
    path.parent.mkdir()
    path.write_bytes(export_bytes(*LINES))

    report = run(tmp_path, path.as_uri(), sandbox)

    assert report.status == "completed"
    assert_conservation(tmp_path / "out", 3)
    assert read_summary(tmp_path / "out")["input"]["path"] == path.as_uri()


def test_resume_refuses_a_changed_object_and_continues_the_same_one(
    tmp_path: Path, store: FolderStore
) -> None:
    original = export_bytes(*LINES)
    url = store.put("exports/customers.csv.gz", original)
    with SandboxServer(api_key=API_KEY, merchant_id=CREDENTIALS["CUSTOMERS_MERCHANT_ID"]) as api:
        api.revoke_key()
        assert run(tmp_path, url, api).status == "aborted"  # an unfinished run to resume

        store.put("exports/customers.csv.gz", export_bytes(*LINES, "C-9,New,Row,,,,"))
        with pytest.raises(ConfigError, match="input file changed"):
            run(tmp_path, url, api, resume=True)
        # Same size, same name, other bytes: still refused (the digest is of the content).
        changed = export_bytes(*LINES).replace(b"\x00", b"\x01", 1)  # gzip's FTEXT flag
        store.put("exports/customers.csv.gz", changed)
        with pytest.raises(ConfigError, match="input file changed"):
            run(tmp_path, url, api, resume=True)

    store.put("exports/customers.csv.gz", original)
    with SandboxServer(api_key=API_KEY, merchant_id=CREDENTIALS["CUSTOMERS_MERCHANT_ID"]) as fresh:
        resumed = run(tmp_path, url, fresh, resume=True)
        assert resumed.status == "completed"
        assert sorted(c["externalId"] for c in fresh.customers()) == ["C-1", "C-2"]
    assert_conservation(tmp_path / "out", 3)


# --- URLs from the job file and the command line; one transfer a run -------------------------


def test_a_run_transfers_the_object_once(
    tmp_path: Path, store: FolderStore, sandbox: SandboxServer
) -> None:
    url = store.put("exports/customers.csv.gz", export_bytes(*LINES))

    assert run(tmp_path, url, sandbox, dry_run=True).status == "completed"

    assert store.opened == 1  # the copy; the digest is Source.digest, computed on the way


def test_workers_read_one_copy_of_an_object_made_for_them_all(
    tmp_path: Path,
    store: FolderStore,
    temp_dir: Path,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = export_bytes(*LINES)
    url = store.put("exports/customers.csv.gz", data)
    unused = write_csv(tmp_path / "unused.csv")
    job = write_job(tmp_path, unused, base_url=sandbox.base_url, extra="max_invalid_ratio = 1.0")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)

    code = cli.main(["run", str(job), "--input", url, "--workers", "2", "--no-progress"])

    assert code == ExitCode.REJECTS  # completed; C-3's email is rejected
    assert store.opened == 1  # this process's copy: the workers, other processes, read it
    assert read_summary(tmp_path / "out")["input"] == {
        "path": url,
        "size": len(data),
        "hash": sha256(data),
    }
    assert_conservation(tmp_path / "out", 3)
    assert list(temp_dir.iterdir()) == []  # deleted once the workers were done


class _Terminated(io.RawIOBase):
    """A download during which the process is sent SIGTERM."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(min(size, 100) if size > 0 else 100)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here, in this thread
        return chunk


def test_sigterm_while_an_object_is_copied_exits_143_and_leaves_no_copy(
    tmp_path: Path, store: FolderStore, temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = store.put("exports/customers.csv.gz", export_bytes(*LINES))

    def terminated(path: str) -> pa.NativeFile:
        return pa.PythonFile(_Terminated((store.root / path).read_bytes()), mode="r")

    monkeypatch.setattr(store, "open_input_stream", terminated)
    job = write_job(tmp_path, write_csv(tmp_path / "unused.csv"))

    def unhandled(signum: int, frame: object) -> None:  # pytest's own would be death
        raise AssertionError("SIGTERM reached the handler from before the command")

    before = signal.signal(signal.SIGTERM, unhandled)
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.main(["run", str(job), "--input", url, "--dry-run", "--no-progress"])
        assert signal.getsignal(signal.SIGTERM) is unhandled  # restored
    finally:
        signal.signal(signal.SIGTERM, before)

    assert stopped.value.code == ExitCode.SIGTERM
    assert list(temp_dir.iterdir()) == []


def test_a_job_file_may_name_a_url_and_it_is_not_resolved_against_its_folder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "customers.csv"
    write_csv(path, *LINES)
    job = write_job(tmp_path, path)
    job.write_text(job.read_text().replace(f'"{path.name}"', f'"{path.as_uri()}"'))

    report = run_job(load(job), RunOptions(dry_run=True, environ={}))

    assert report.status == "completed"
    assert read_summary(tmp_path / "out")["input"]["path"] == path.as_uri()


def test_the_command_line_takes_a_url_as_input(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    write_csv(path, *LINES)
    job = write_job(tmp_path, tmp_path / "unused.csv")
    code = cli.main(["run", str(job), "--input", path.as_uri(), "--dry-run", "--no-progress"])
    assert code == ExitCode.REJECTS  # C-3's email: read, validated, nothing sent
