"""The trigger's deployable zip: assembled by scripts/assemble_lambda_zip.py without a policy (POLICY_YAML `-`), so
it holds the executable bootstrap alone."""

import os
import stat
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import assemble_lambda_zip as asm  # noqa: E402

BOOTSTRAP = b"\x7fELF fake trigger bootstrap"


def fake_bootstrap_zip(path, with_stale_policy):
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.create_system = 0
        info.external_attr = 0
        z.writestr(info, BOOTSTRAP)
        if with_stale_policy:
            z.writestr("policy.yaml", b"stale")
    return path


def test_a_zip_without_policy_holds_only_the_executable_bootstrap(tmp_path):
    src = fake_bootstrap_zip(tmp_path / "bootstrap.zip", with_stale_policy=True)
    out = tmp_path / "trigger.zip"
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "assemble_lambda_zip.py"), "assemble",
                        str(src), asm.NO_POLICY, str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(out) as z:
        assert z.namelist() == ["bootstrap"], "no policy, not even a stale one from the source zip"
        boot = z.getinfo("bootstrap")
        assert boot.create_system == 3
        assert stat.S_IMODE(boot.external_attr >> 16) == 0o755 and stat.S_ISREG(boot.external_attr >> 16)
        assert z.read("bootstrap") == BOOTSTRAP


def test_the_build_script_builds_and_checks_the_trigger():
    with open(os.path.join(REPO, "scripts", "build-lambdas.sh")) as f:
        script = f.read()
    assert "--bin trigger" in script
    assert "for fn in authorizer broker trigger" in script
    assert "infra/build/trigger.zip" in script and "5000000" in script
