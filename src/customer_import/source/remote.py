"""Inputs named by URL: objects on S3 (``s3://``) and Google Cloud Storage (``gs://``), and
``file://`` URLs, which are local paths.

An object is copied once, before anything reads it, into an owner-only temporary file (in
``TMPDIR``), and its sha256 is computed on the way; from then on it is read exactly as a local
file, and the copy is deleted when the ``Source`` closes. Why a copy rather than streaming the
object: a run reads its input several times (the encoding check, the header, the pre-pass over
the ids, the records, the source values of API rejects), so streaming would transfer it four or
five times, and an object replaced mid-run would mix two versions under one set of record
numbers. The digest is the same ``sha256:`` of the bytes as for a local file, so ``--resume``
refuses a changed object and ``merge`` recognises shards of one input however they read it.

Objects are read with pyarrow's filesystems (the ``cloud`` extra: ``pip install
'customer-import[cloud]'``), imported when the first object is read, so a run on a local file
never loads pyarrow; without it, an object's URL is a ConfigError that names the extra.

Credentials are pyarrow's standard chains (``AWS_*`` variables, ``~/.aws``, instance and pod
roles; ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application default credentials, the
metadata server). A URL holding credentials is refused, and only named URL parameters are
accepted, so the URL that reaches logs and ``summary.json`` never carries a secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from customer_import.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

log = logging.getLogger("customer_import")

#: Schemes of object stores, with the name used in messages.
REMOTE_SCHEMES: Final = {"s3": "S3", "gs": "Google Cloud Storage", "gcs": "Google Cloud Storage"}
#: URL parameters passed on to pyarrow (which checks them per scheme); none can hold a secret.
URL_PARAMETERS: Final = ("region", "endpoint_override", "scheme", "retry_limit_seconds")
_COPY_CHUNK: Final = 8 << 20  # one read of an S3 stream is one ranged GET: keep them few
_BUCKET: Final = re.compile(r"[A-Za-z0-9._-]+")  # S3 and GCS bucket names: no ":", no "@"
_PARAMETER_NAME: Final = re.compile(r"[a-z_]{1,32}")
_AWS_KEY_ID: Final = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b")
_SECRET_VARIABLES: Final = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")
_DENIED: Final = re.compile(
    r"access.?denied|status 403|invalid.?access.?key|signature.?does.?not.?match|expired.?token"
    r"|permission.?denied|unauthenticated|access token|credential",
    re.IGNORECASE,
)
_UNREACHABLE: Final = re.compile(
    r"network.?connection|could not resolve|could not connect|unavailable|timed? ?out",
    re.IGNORECASE,
)
_GCLOUD_ADC: Final = "application_default_credentials.json"
_NO_BUCKET: Final = re.compile(r"no.?such.?bucket", re.IGNORECASE)
#: How to install what reading objects needs (pyarrow), for the message when it is missing.
CLOUD_EXTRA: Final = "pip install 'customer-import[cloud]'"


@dataclass(frozen=True, slots=True)
class Url:
    """A URL the job can read: supported scheme, no credentials, only known parameters."""

    text: str
    """As given: safe to print."""
    scheme: str
    file_name: str
    """The object's (or file's) own name, which says its format."""


def parse_url(text: str) -> Url:
    """Check a source URL; ConfigError (exit 2) says what is wrong without echoing secrets."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES and scheme != "file":
        raise ConfigError(
            f"{_printable(text)}: {scheme}:// inputs are not supported; give a local path or "
            "an s3://, gs:// or file:// URL"
        )
    _refuse_credentials(text, parts.netloc, scheme)
    _refuse_parameters(text, parts.query, scheme)
    if parts.fragment:
        raise ConfigError(f"{_printable(text)}: a '#' in an object's name is written %23")
    file_name = unquote(parts.path.rsplit("/", 1)[-1])
    if scheme != "file" and (not parts.netloc or not file_name):
        raise ConfigError(
            f"{text}: name one object, as {scheme}://bucket/folder/export.csv "
            "(a bucket or a folder is not an input)"
        )
    return Url(text, scheme, file_name)


def _printable(text: str) -> str:
    """A refused URL for its message: no user part, no parameters.

    Everything up to the last "@" goes: a secret holding "/" (AWS secrets may) would otherwise
    leave its tail in the path."""
    scheme, _, rest = text.split("?", 1)[0].split("#", 1)[0].partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else f"{scheme}://{rest}"


def _refuse_credentials(text: str, netloc: str, scheme: str) -> None:
    """The host part is a bucket (or nothing, or localhost, for file://): no user, no password."""
    if scheme == "file":
        if "@" in text.split("?", 1)[0] and netloc not in ("", "localhost"):
            raise ConfigError(f"{_printable(text)}: a file:// URL has no user part")
        return
    # gs://anonymous@bucket/... is pyarrow's access to a public bucket: a user, but no secret.
    bucket = netloc.removeprefix("anonymous@") if scheme != "s3" else netloc
    if _BUCKET.fullmatch(bucket):
        return
    raise ConfigError(
        f"{_printable(text)}: the part after {scheme}:// is the bucket alone; credentials in a "
        f"URL are not accepted (they would be written to logs and summary.json): "
        f"{_credentials_hint(scheme)}"
    )


def _refuse_parameters(text: str, query: str, scheme: str) -> None:
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    unknown = sorted({name for name in names if name not in URL_PARAMETERS})
    if scheme == "file" and names:
        unknown = sorted(set(names))
    if unknown:
        # A name is shown only when it looks like one: "?<secret>" must not be echoed.
        shown = ", ".join(n if _PARAMETER_NAME.fullmatch(n) else "(unnamed)" for n in unknown)
        accepted = "none" if scheme == "file" else ", ".join(URL_PARAMETERS)
        raise ConfigError(
            f"{_printable(text)}: URL parameter {shown} not accepted (accepted: {accepted})"
        )


def file_url_path(url: Url) -> Path:
    """The local path a ``file://`` URL names; it is absolute, never resolved against a folder."""
    parts = urlsplit(url.text)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"{url.text}: a file:// URL names a file on this machine, with an absolute path: "
            "file:///folder/export.csv (three slashes)"
        )
    return Path(unquote(parts.path))


# --- objects -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteCopy:
    """A private local copy of an object."""

    path: Path
    size: int
    digest: str
    """``sha256:<hex>`` of the object's bytes, computed while copying."""

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def filesystem_for(url: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the object's path in it: the network edge tests replace."""
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(url)
    return filesystem, str(path)


def _pyarrow(url: Url) -> Any:
    """pyarrow, imported when an object is first read; ConfigError naming the extra without it."""
    try:
        import pyarrow as pa
        import pyarrow.fs  # pa.fs, below
    except ImportError as exc:
        service = REMOTE_SCHEMES.get(url.scheme, url.scheme)
        raise ConfigError(
            f"{url.text}: reading objects on {service} needs pyarrow, which is not installed: "
            f"{CLOUD_EXTRA}"
        ) from exc
    return pa


def fetch(url: Url) -> RemoteCopy:
    """Copy the object into an owner-only temporary file, hashing it on the way."""
    filesystem, key = _connect(url)
    size = _object_size(filesystem, key, url)
    log.info("copying %s (%s bytes) to a temporary file", url.text, f"{size:,}")
    started = time.monotonic()
    handle, name = tempfile.mkstemp(prefix="customer-import-", suffix=f"-{url.file_name}")
    path = Path(name)  # mkstemp creates it readable by the owner only
    try:
        with os.fdopen(handle, "wb") as out:
            digest = _stream(filesystem, key, url, size, _writer(out, url))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    log.info("copied %s in %.1f s", url.text, time.monotonic() - started)
    return RemoteCopy(path, size, digest)


def remote_digest(url: Url) -> str:
    """``sha256:<hex>`` of the object's bytes, streamed (no copy kept)."""
    filesystem, key = _connect(url)
    size = _object_size(filesystem, key, url)
    return _stream(filesystem, key, url, size, lambda chunk: None)


def _connect(url: Url) -> tuple[pafs.FileSystem, str]:
    pa = _pyarrow(url)
    try:
        return filesystem_for(url.text)
    except pa.ArrowInvalid as exc:  # a parameter's value pyarrow refuses
        raise ConfigError(f"{url.text}: {_scrub(str(exc))}") from exc
    except (pa.ArrowException, OSError) as exc:  # S3 looks up the bucket's region first
        raise InputError(_describe(url, exc)) from exc


def _object_size(filesystem: pafs.FileSystem, key: str, url: Url) -> int:
    pa = _pyarrow(url)
    try:
        info = filesystem.get_file_info(key)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(_describe(url, exc)) from exc
    if info.type == pa.fs.FileType.NotFound:
        raise InputError(
            f"{url.text}: no such object (check the bucket and the key: keys are case-sensitive)"
        )
    if info.type != pa.fs.FileType.File:
        raise InputError(f"{url.text}: a folder, not an object; name the export itself")
    if not info.size:
        raise InputError(f"{url.text}: the object is empty (0 bytes); expected a header line")
    return int(info.size)


def _stream(
    filesystem: pafs.FileSystem, key: str, url: Url, size: int, sink: Callable[[bytes], object]
) -> str:
    pa, hasher, copied = _pyarrow(url), hashlib.sha256(), 0
    try:
        # compression=None: the bytes as stored; pyarrow would otherwise gunzip a .gz itself.
        with filesystem.open_input_stream(key, compression=None) as stream:
            while chunk := stream.read(_COPY_CHUNK):
                hasher.update(chunk)
                sink(chunk)
                copied += len(chunk)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(_describe(url, exc)) from exc
    if copied != size:
        raise InputError(
            f"{url.text}: the object changed while it was read ({copied:,} bytes, "
            f"{size:,} expected); run again once it is written completely"
        )
    return f"sha256:{hasher.hexdigest()}"


def _writer(out: Any, url: Url) -> Callable[[bytes], object]:
    def write(chunk: bytes) -> None:
        try:
            out.write(chunk)
        except OSError as exc:
            raise InputError(
                f"{url.text}: cannot write its temporary copy in {tempfile.gettempdir()}: "
                f"{exc.strerror or exc}; set TMPDIR to a folder with room for the export"
            ) from exc

    return write


# --- messages ------------------------------------------------------------------------------


def _describe(url: Url, exc: BaseException) -> str:
    """A specific message for a failed read of an object, never holding a secret."""
    service = REMOTE_SCHEMES.get(url.scheme, url.scheme)
    detail = _scrub(str(exc))
    if _NO_BUCKET.search(detail):
        return f"{url.text}: no such bucket ({detail})"
    if _DENIED.search(detail):
        hint = _credentials_hint(url.scheme, denied=True)
        return f"{url.text}: {service} refused access ({detail}); {hint}"
    if _UNREACHABLE.search(detail):
        return f"{url.text}: cannot reach {service} ({detail}); check the network and the URL"
    return f"{url.text}: cannot read the object: {detail}"


@dataclass(frozen=True, slots=True)
class _Chain:
    """Where a store's client looks for credentials, and what reading an object needs."""

    variables: tuple[str, ...]
    files: Callable[[Mapping[str, str]], tuple[str, ...]]
    how: str
    needs: str


_CHAINS: Final = {
    "s3": _Chain(
        ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"),
        lambda env: (
            env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
            env.get("AWS_CONFIG_FILE", "~/.aws/config"),
        ),
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or run with an IAM role",
        "reading needs s3:GetObject; without s3:ListBucket S3 answers 403 for a missing key too",
    ),
    "gs": _Chain(
        ("GOOGLE_APPLICATION_CREDENTIALS",),
        lambda env: (f"{env.get('CLOUDSDK_CONFIG', '~/.config/gcloud')}/{_GCLOUD_ADC}",),
        "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run `gcloud auth "
        "application-default login`, or run with a service account attached",
        "reading needs storage.objects.get",
    ),
}


def _credentials_hint(scheme: str, *, denied: bool = False) -> str:
    """How to give credentials, and which of those places hold some (names, never values)."""
    chain = _CHAINS["gs" if scheme == "gcs" else scheme]
    env = os.environ
    found = [name for name in chain.variables if env.get(name)]
    found += [file for file in chain.files(env) if Path(file).expanduser().is_file()]
    where = f"credentials found in: {', '.join(found)}" if found else "no credentials found"
    needs = f"; {chain.needs}" if denied else ""
    return f"{chain.how} ({where}; an instance or pod role cannot be seen from here){needs}"


def _scrub(message: str) -> str:
    """A library's message with anything that could be a credential masked."""
    for name in _SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 8:
            message = message.replace(value, "***")
    return _AWS_KEY_ID.sub("***", message)
