"""``[storage] backend = "s3"`` in server.toml: parsed strictly, rendered, and opened on moto."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from opsbackup.errors import ConfigError, LocalIOError
from opsbackup.server.config import S3Settings, load_server_config, render_server_toml
from opsbackup.storage.s3 import MIN_PART_SIZE, S3Store
from tests.s3_support import moto_endpoint, new_bucket


def _files(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text("x")


def _write(tmp_path: Path, storage: str) -> Path:
    _files(tmp_path)
    path = tmp_path / "server.toml"
    path.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 8443\n'
        '[tls]\ncert = "c.pem"\nkey = "k.pem"\nca_cert = "ca.pem"\n'
        f"[storage]\n{storage}\n"
    )
    return path


def test_rendered_s3_config_loads_and_opens_the_bucket(tmp_path: Path) -> None:
    _files(tmp_path)
    bucket = new_bucket()
    s3 = S3Settings(bucket=bucket, endpoint=moto_endpoint(), prefix="site-a/prod", part_size=MIN_PART_SIZE)
    text = render_server_toml(host="127.0.0.1", port=8443, cert="c.pem", key="k.pem", ca_cert="ca.pem", s3=s3)
    (tmp_path / "server.toml").write_text(text)
    config = load_server_config(tmp_path / "server.toml")
    assert config.storage_backend == "s3"
    assert config.s3 == S3Settings(bucket, moto_endpoint(), "site-a/prod/", None, None, MIN_PART_SIZE)
    with pytest.raises(ConfigError, match="no storage root"):
        _ = config.storage_root
    store = config.open_store()
    assert isinstance(store, S3Store)
    assert store.part_size == MIN_PART_SIZE
    store.put("k", io.BytesIO(b"x"))
    keys = store.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [k["Key"] for k in keys] == ["site-a/prod/k"]
    assert not (tmp_path / "storage").exists()  # an s3 server keeps nothing on its disk


def test_the_default_config_says_how_to_switch_to_s3(tmp_path: Path) -> None:
    text = render_server_toml(host="h", port=1, cert="c.pem", key="k.pem", ca_cert="ca.pem")
    assert 'backend = "filesystem"' in text
    assert 'backend = "s3"' in text  # in the comment


def test_a_missing_bucket_is_one_clear_error_at_start(tmp_path: Path) -> None:
    path = _write(tmp_path, f'backend = "s3"\nbucket = "no-such-bucket-x"\nendpoint = "{moto_endpoint()}"')
    with pytest.raises(LocalIOError, match="no-such-bucket-x"):
        load_server_config(path).open_store()


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ('backend = "s3"', "needs 'bucket'"),
        ('backend = "s3"\nbucket = "b-1"\nroot = "x"', "not 'root'"),
        ('backend = "filesystem"\nroot = "x"\nbucket = "b-1"', "for the s3 backend"),
        ('backend = "s3"\nbucket = "Bad_Bucket"', "not a valid S3 bucket name"),
        ('backend = "s3"\nbucket = "b-1"\nendpoint = "ftp://x"', "http:// or https://"),
        ('backend = "s3"\nbucket = "b-1"\nendpoint = "http://h:9000/path"', "no path"),
        ('backend = "s3"\nbucket = "b-1"\nprefix = "../up"', "prefix"),
        ('backend = "s3"\nbucket = "b-1"\npart_size = 1024', "part_size"),
        ('backend = "s3"\nbucket = "b-1"\nsecret_key = "x"', "unknown key 'secret_key'"),
        ('backend = "s4"', "not one of"),
    ],
)
def test_bad_s3_settings_are_one_clear_error(tmp_path: Path, storage: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_server_config(_write(tmp_path, storage))
