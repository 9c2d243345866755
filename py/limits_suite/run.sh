#!/usr/bin/env bash
# Runs limits' own storage/strategy tests against fastbreaker:// and fastbreaker+shm://
# (see conftest.py here). Usage: run.sh PYTHON WORKDIR [pytest args...]
# The limits 5.8.0 sdist is downloaded from PyPI into WORKDIR once (the only network
# use); later runs use the cached copy. Nothing of limits' is committed.
set -euo pipefail
python=$1 work=$2
shift 2
version=5.8.0
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
sdist="$work/limits-$version.tar.gz"
if [ ! -f "$sdist" ]; then
  "$python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    "limits==$version" -d "$work"
fi
src="$work/limits-$version"
rm -rf "$src"
tar -xzf "$sdist" -C "$work"
cp "$here/conftest.py" "$src/tests/conftest.py"
cd "$src"
# Their pytest.ini's addopts want pytest-cov and docker plugins: replaced. Their
# filterwarnings (warnings are errors) and markers stay.
exec "$python" -m pytest -p no:cacheprovider -o addopts="" -o asyncio_default_fixture_loop_scope=function -rs -q \
  tests/test_storage.py tests/test_strategy.py tests/integration/test_concurrency.py "$@"
