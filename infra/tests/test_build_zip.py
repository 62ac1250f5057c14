"""The deployable zips: scripts/assemble_lambda_zip.py (used by scripts/build-lambdas.sh) on a fake cargo-lambda
bootstrap.zip, and build-lambdas.sh's refusal to bundle the example policy by accident."""

import os
import stat
import subprocess
import sys
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import assemble_lambda_zip as asm  # noqa: E402

BOOTSTRAP = b"\x7fELF fake bootstrap"
POLICY = b"version: 1\ncallers: []\n"


def fake_bootstrap_zip(path, with_stale_policy=False, bootstrap=True):
    # cargo-lambda writes the binary without unix mode bits on some hosts: the assembly must set them.
    with zipfile.ZipFile(path, "w") as z:
        if bootstrap:
            info = zipfile.ZipInfo("bootstrap")
            info.create_system = 0
            info.external_attr = 0
            z.writestr(info, BOOTSTRAP)
        if with_stale_policy:
            z.writestr("policy.yaml", b"stale")
    return path


def test_bootstrap_is_executable_and_policy_is_at_the_root(tmp_path):
    src = fake_bootstrap_zip(tmp_path / "bootstrap.zip", with_stale_policy=True)
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(POLICY)
    out = tmp_path / "authorizer.zip"
    asm.assemble(str(src), str(policy), str(out))
    with zipfile.ZipFile(out) as z:
        assert sorted(z.namelist()) == ["bootstrap", "policy.yaml"]
        boot = z.getinfo("bootstrap")
        assert boot.create_system == 3
        assert stat.S_IMODE(boot.external_attr >> 16) == 0o755 and stat.S_ISREG(boot.external_attr >> 16)
        assert z.read("bootstrap") == BOOTSTRAP
        pol = z.getinfo("policy.yaml")
        assert stat.S_IMODE(pol.external_attr >> 16) == 0o644
        assert z.read("policy.yaml") == POLICY, "the stale policy of the source zip must be replaced"


def test_a_zip_without_bootstrap_is_refused(tmp_path):
    src = fake_bootstrap_zip(tmp_path / "bootstrap.zip", bootstrap=False, with_stale_policy=True)
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(POLICY)
    with pytest.raises(asm.AssemblyError, match="no bootstrap"):
        asm.assemble(str(src), str(policy), str(tmp_path / "out.zip"))
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "assemble_lambda_zip.py"), "assemble",
                        str(src), str(policy), str(tmp_path / "out.zip")], capture_output=True, text=True)
    assert r.returncode == 1 and "no bootstrap" in r.stderr


def test_report_warns_over_the_size_target(tmp_path, capsys):
    big = tmp_path / "broker.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
        z.writestr("bootstrap", os.urandom(asm.SIZE_TARGET))
    small = tmp_path / "authorizer.zip"
    asm.assemble(str(fake_bootstrap_zip(tmp_path / "b.zip")), __file__, str(small))
    assert asm.report([str(small), str(big)]) == ["broker.zip"]
    assert "over the 5 MB target" in capsys.readouterr().err


@pytest.mark.parametrize("args", [[], ["--policy", "config/policy.example.yaml"]])
def test_build_refuses_the_example_policy_unless_asked(args):
    r = subprocess.run(["bash", os.path.join(REPO, "scripts", "build-lambdas.sh"), *args], capture_output=True,
                       text=True, cwd=REPO, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "--allow-example-policy" in r.stderr
