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
