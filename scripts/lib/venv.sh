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
