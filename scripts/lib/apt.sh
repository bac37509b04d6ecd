# Sourced by the scripts that install what they need from Debian's packages (as root).

# apt_install PACKAGE...: installs the packages, without their recommends, refreshing the
# package lists first.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
