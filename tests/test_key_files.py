"""CURVE key files: bad names, cut or damaged keys, folders among keys, loose secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainmon.cli import main
from trainmon_client.security import create_keypair, load_allowed, load_keypair, load_public


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return create_keypair(tmp_path, "a")


@pytest.mark.parametrize("name", ["../escape", "", ".hidden", "a/b", " a", "a\x1b[2J"])
def test_keygen_refuses_names_that_leave_the_directory(tmp_path: Path, name: str) -> None:
    """keygen writes only plain, visible names inside the directory given."""
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "k"), "--name", name])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "key name" in result.output
    assert not (tmp_path / "escape.key").exists() and not (tmp_path / "k").exists()


def test_cut_key_says_so(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """A key file cut inside its key names the file and what is wrong with it."""
    public = pair[0].read_text()
    cut = tmp_path / "cut.key"
    cut.write_text(public[: public.index("public-key") + 30] + "\n")
    with pytest.raises(ValueError, match=r"cut\.key: its public key has \d+ characters"):
        load_public(cut)


def test_file_without_key_says_so(tmp_path: Path) -> None:
    """A file that holds no key at all is named as not a key file."""
    junk = tmp_path / "junk.key"
    junk.write_text("hello\n")
    with pytest.raises(ValueError, match=r"junk\.key is not a key file written by"):
        load_public(junk)


def test_folder_named_like_a_key_is_passed_over(pair: tuple[Path, Path], tmp_path: Path) -> None:
    """A directory ending in .key inside the allow directory is not read as a key."""
    allow = tmp_path / "allow"
    (allow / "folder.key").mkdir(parents=True)
    (allow / "a.key").write_bytes(pair[0].read_bytes())
    assert load_allowed(allow) == {load_public(pair[0])}


def test_a_key_path_that_is_a_folder_says_so(tmp_path: Path) -> None:
    """Pointing at a folder where a key file belongs says it is a directory."""
    with pytest.raises(ValueError, match="is not a key file \\(a directory\\)"):
        load_public(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_secret_key_readable_by_others_is_refused(pair: tuple[Path, Path]) -> None:
    """A secret key other users can read is refused with the chmod that fixes it."""
    secret = pair[1]
    load_keypair(secret)  # as keygen writes it: fine
    secret.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        load_keypair(secret)


def test_monitor_with_cut_server_key_exits_with_one_line(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """`trainmon tail` with a cut server key ends with a message, not a traceback."""
    cut = tmp_path / "cut.key"
    cut.write_text(pair[0].read_text()[:120])
    result = CliRunner().invoke(
        main,
        [
            "tail",
            "--connect",
            "tcp://127.0.0.1:9",
            "--curve-secret",
            str(pair[1]),
            "--curve-server",
            str(cut),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "cut.key" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(os.name != "posix", reason="symbolic links and modes are POSIX")
def test_keygen_force_replaces_a_planted_link_instead_of_following_it(tmp_path: Path) -> None:
    """A link planted where the secret key goes (by anyone who can write the directory)
    is replaced by the new key file; the file it pointed to is left untouched."""
    shared = tmp_path / "shared"
    shared.mkdir()
    grab = tmp_path / "grab"
    grab.write_text("")
    (shared / "server.key_secret").symlink_to(grab)
    result = CliRunner().invoke(main, ["keygen", str(shared), "--name", "server", "--force"])
    assert result.exit_code == 0, result.output
    assert grab.read_text() == ""
    secret = shared / "server.key_secret"
    assert not secret.is_symlink() and "secret-key" in secret.read_text()
    assert secret.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in shared.iterdir() if p.name.startswith(".keygen")] == []
