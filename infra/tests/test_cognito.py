"""Offline assertions on infra/cognito-example.yaml's trigger wiring and GetClientToken client (checks_cognito.py):
each check on the template, and each realistic mistake of checks_cognito.MUTATIONS rejected by at least one check.

    .venv-cfnlint/bin/python -m pytest infra/tests/test_cognito.py -q
"""

import copy
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import checks_cognito  # noqa: E402
import sam_expand  # noqa: E402
from tplutil import COGNITO  # noqa: E402

CHECKS = {f.__name__[len("check_"):]: f for f in checks_cognito.CHECKS}


@pytest.fixture(scope="module")
def source():
    return sam_expand.load(COGNITO)


@pytest.fixture(scope="module")
def expanded(source):
    return sam_expand.expand(source)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_cognito_template(name, source, expanded):
    CHECKS[name](source, expanded)


def failing_checks(template):
    expanded = sam_expand.expand(template)
    failed = []
    for name, check in CHECKS.items():
        try:
            check(template, expanded)
        except (AssertionError, LookupError, TypeError, ValueError) as e:
            failed.append(f"{name}: {type(e).__name__}: {str(e)[:120]}")
    return failed


@pytest.mark.parametrize("name", sorted(checks_cognito.MUTATIONS))
def test_cognito_mutation_is_caught(name, source):
    broken = copy.deepcopy(source)
    checks_cognito.MUTATIONS[name](broken)
    assert broken != source, f"{name} changed nothing"
    assert failing_checks(broken), f"every check passes on the Cognito template with mutation {name}"
