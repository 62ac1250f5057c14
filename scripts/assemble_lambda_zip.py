"""Assembles a deployable Lambda zip from cargo-lambda's bootstrap.zip and the policy document, and reports sizes.

    python3 scripts/assemble_lambda_zip.py assemble SRC_BOOTSTRAP_ZIP POLICY_YAML OUT_ZIP
    python3 scripts/assemble_lambda_zip.py report OUT_ZIP...

`assemble` copies every entry of SRC except a stale policy.yaml, marks `bootstrap` as a regular executable file
(mode 0755, unix attributes: Lambda's provided runtimes exec it and fail with "permission denied" otherwise), and adds
the policy as `policy.yaml` at the zip root (/var/task/policy.yaml, the template's PolicyFile default), mode 0644.
A POLICY_YAML of `-` assembles a zip without a policy (the Cognito trigger reads none).
`report` prints each zip's size and warns above the 5 MB target. Used by scripts/build-lambdas.sh; tested by
infra/tests/test_build_zip.py.
"""

import os
import sys
import zipfile

SIZE_TARGET = 5_000_000  # the 5 MB target, read as decimal megabytes (the stricter reading)
EXECUTABLE = 0o100755  # regular file, rwxr-xr-x
REGULAR = 0o100644  # regular file, rw-r--r--
UNIX = 3  # ZipInfo.create_system: the external attributes carry unix mode bits


class AssemblyError(Exception):
    pass


NO_POLICY = "-"


def assemble(src, policy, out):
    policy_bytes = None
    if policy != NO_POLICY:
        with open(policy, "rb") as f:
            policy_bytes = f.read()
    with zipfile.ZipFile(src) as zin:
        names = zin.namelist()
        if "bootstrap" not in names:
            raise AssemblyError(f"{src} has no bootstrap entry (entries: {names})")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
            for info in zin.infolist():
                if info.filename == "policy.yaml":
                    continue
                if info.filename == "bootstrap":
                    info.external_attr = EXECUTABLE << 16
                    info.create_system = UNIX
                zout.writestr(info, zin.read(info.filename))
            if policy_bytes is None:
                return
            pi = zipfile.ZipInfo("policy.yaml", date_time=(1980, 1, 1, 0, 0, 0))
            pi.create_system = UNIX
            pi.external_attr = REGULAR << 16
            pi.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(pi, policy_bytes)


def report(paths, out=None, err=None):
    out, err = out or sys.stdout, err or sys.stderr
    over = []
    for path in paths:
        size = os.path.getsize(path)
        with zipfile.ZipFile(path) as z:
            boot = z.getinfo("bootstrap").file_size
        name = os.path.basename(path)
        print(f"build-lambdas: {name:15} {size:9d} bytes ({size / 1048576:.2f} MiB)  "
              f"bootstrap {boot / 1048576:.2f} MiB uncompressed", file=out)
        if size >= SIZE_TARGET:
            print(f"build-lambdas: WARNING: {name} is over the 5 MB target", file=err)
            over.append(name)
    return over


def main(argv):
    if len(argv) == 4 and argv[0] == "assemble":
        try:
            assemble(*argv[1:])
        except (AssemblyError, OSError, zipfile.BadZipFile) as e:
            print(f"build-lambdas: {e}", file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 2 and argv[0] == "report":
        report(argv[1:])
        return 0
    print("usage:\n" + "\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
