# Sourced by tests/install.sh, tests/selfcheck.sh and tests/run.sh: where the tests' Python
# virtual environment lives (created by install.sh with --system-site-packages, so Debian's
# python3-* packages are visible in it beside tests/requirements.txt).
TEST_VENV="${ICSMAIL_TEST_VENV:-/var/cache/icsmail-tests/venv}"
TEST_PYTHON="$TEST_VENV/bin/python"
