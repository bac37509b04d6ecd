# Sourced by the ensure-*.sh scripts that keep a Python venv under .venv/.

# fresh_venv DIR: (re)creates an empty venv at DIR, installing python3 and python3-venv from
# Debian first when they are missing (Debian splits ensurepip into python3-venv).
fresh_venv() {
  local venv=$1
  export DEBIAN_FRONTEND=noninteractive
  if ! command -v python3 >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
}

# venv_from_requirements LABEL DIR REQUIREMENTS CHECK: a no-op when DIR was installed from the
# same requirements file (its hash is stamped in DIR) and the Python statement CHECK still
# passes in it; otherwise (re)creates DIR, pip-installs the file and checks again.
venv_from_requirements() {
  local label=$1 venv=$2 req=$3 check=$4
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "$label: $venv is up to date with $req"
    return 0
  fi
  fresh_venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  "$venv/bin/python" -c "$check"
  echo "$want" >"$stamp"
  echo "$label: installed $req into $venv"
}

# install_local_package LABEL DIR PACKAGE: pip-installs the Python package in the directory
# PACKAGE into the venv DIR; a no-op when DIR holds it installed from the same files (a hash
# of PACKAGE's pyproject.toml, README.md and src/ is stamped in DIR). Builds from a copy, so
# the build leaves nothing in the repository.
install_local_package() {
  local label=$1 venv=$2 package=$3
  local stamp="$venv/.$(basename "$package").sha256" want copy
  want="$( (cd "$package" && find pyproject.toml README.md src -type f \
    ! -path '*/__pycache__/*' ! -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$label: $venv has $package as it is"
    return 0
  fi
  copy="$(mktemp -d)"
  (cd "$package" && tar --exclude=__pycache__ --exclude='*.egg-info' --exclude=build -cf - \
    pyproject.toml README.md src) | tar -xf - -C "$copy"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$copy"
  rm -rf "$copy"
  echo "$want" >"$stamp"
  echo "$label: installed $package into $venv"
}
